"""Fault windows from the control API's timeline: each fault from the change that began it to the one that
ended it (a restart, a link back up, a toxic removed, the ERP back to normal), in scenario seconds.

Each window carries a ``record`` in ``run.json``'s fault shape (:class:`kernel.run_record.FaultRecord`),
so the report measures recovery per fault as for a scenario's scheduled faults: the affected plants for a
plant's link, the ERP kind for an ERP mode, the process as ``target`` for a kill.
"""

from __future__ import annotations

from typing import Any


def _link_plants(link: str) -> list[str] | str:
    plant = link.removeprefix("wan-").removeprefix("opcua-")
    return [plant] if plant and plant[0].isupper() and "-" not in plant else "all"


def _down_kind(link: str) -> str:
    """A plant's WAN link down is the scenario's ``wan_outage``; any other hop down is ``link_down``."""
    return "wan_outage" if _link_plants(link) != "all" and not link.startswith("opcua-") else "link_down"


def fault_windows(timeline: list[dict[str, Any]], end_of_run: float) -> list[dict[str, Any]]:
    """Open/close pairs of the timeline as windows; a fault never closed ends with the run."""
    open_: dict[tuple[str, str], dict[str, Any]] = {}
    windows: list[dict[str, Any]] = []

    def begin(key: tuple[str, str], kind: str, event: dict[str, Any], **extra: Any) -> None:
        close(key, event["t"])
        open_[key] = {"kind": kind, "start": float(event["t"]), "what": event["what"], **extra}

    def close(key: tuple[str, str], t: float) -> None:
        window = open_.pop(key, None)
        if window is not None:
            window["end"] = max(window["start"], float(t))
            windows.append(window)

    for e in sorted(timeline, key=lambda e: e["t"]):
        what, ev = e["what"], e["event"]
        if ev == "process_kill":
            begin(("process", what), "process_kill", e, record={"target": what})
        elif ev == "process_restart":
            close(("process", what), e["t"])
        elif ev == "link_down":
            begin(("link", what), _down_kind(what), e, record={"plants": _link_plants(what)})
        elif ev == "link_up":
            close(("link", what), e["t"])
        elif ev == "toxic_added":
            begin(("toxic", f"{what}/{e['toxic']}"), f"link_{e.get('type')}", e,
                  record={"plants": _link_plants(what)})
        elif ev == "toxic_removed":
            close(("toxic", f"{what}/{e['toxic']}"), e["t"])
        elif ev == "links_reset":
            for key in [k for k in open_ if k[0] in ("link", "toxic")]:
                close(key, e["t"])
        elif ev == "opcua_session_drop":  # an instant: recovery counts from the drop
            begin(("opcua", what), "opcua_session_drop", e, record={"plants": _link_plants(what)})
            close(("opcua", what), e["t"])
        elif ev == "opcua_stall":
            begin(("opcua-stall", what), "opcua_stall", e, record={"plants": _link_plants(what)})
        elif ev in ("opcua_stall_end", "opcua_resume"):
            close(("opcua-stall", what), e["t"])
        elif ev == "ack_loss":
            close(("acks", what), e["t"])
            if e.get("share", 0.0) > 0:
                begin(("acks", what), "broker_redelivery", e, record={"rate": e["share"]})
        elif ev == "clock_skew":  # an edge's clock off by skew_s; 0 puts it right
            close(("clock", what), e["t"])
            if e.get("skew_s", 0.0):
                begin(("clock", what), "edge_clock_skew", e, record={"plants": [what]})
        elif ev == "second_edge":  # a second edge with the plant's credentials, running or not
            close(("second_edge", what), e["t"])
            if e.get("running"):
                begin(("second_edge", what), "second_edge", e, record={"plants": [what]})
        elif ev == "erp_mode":
            key = ("erp", what)
            close(key, e["t"])
            if e.get("mode", "normal") != "normal":
                begin(key, f"erp_{e['mode']}", e, record={"erp": what.removeprefix("erp-")})
    for key in list(open_):
        close(key, end_of_run)
    for w in windows:
        w["record"] = {"kind": w["kind"], "start": w["start"], "end": w["end"], **w.pop("record", {})}
    return sorted(windows, key=lambda w: w["start"])
