"""Plain-language sentences: the executive verdict lines and the one-line breach descriptions."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from scenarios.units import format_duration

FAULT_NAMES = {
    "erp_outage": "ERP outage", "erp_slow": "ERP slowdown", "wan_outage": "WAN outage",
    "broker_redelivery": "broker redelivery burst", "process_kill": "process kill",
    "gateway_down": "gateway outage",
}
STAT_WORDS = {"p50": "half", "p95": "95 %", "p99": "99 %", "max": "all"}
SUBJECTS = {
    "order_release_latency": ("production orders", "were confirmed by the MES"),
    "inventory_posting_delay": ("inventory postings", "reached the ERP"),
    "shipment_posting_delay": ("shipment postings", "reached the ERP"),
    "quality_hold_propagation": ("quality holds", "reached the warehouse"),
}


def count(n: float | None) -> str:
    """``1,234``; non-integers keep one decimal (means over replications)."""
    if n is None:
        return "n/a"
    return f"{n:,.0f}" if abs(n - round(n)) < 1e-9 else f"{n:,.1f}"


def dur(seconds: float | None) -> str:
    """Human duration, ``n/a`` for missing; minutes keep a decimal so 14.9 min never reads as 15 min."""
    if seconds is None:
        return "n/a"
    if 120 <= seconds < 3600:
        text = f"{seconds / 60:.1f}".removesuffix(".0")
        return f"{text} min"
    return format_duration(float(seconds))


def plural(n: float | None, word: str, many: str | None = None) -> str:
    """``1 posting`` / ``3 postings``."""
    return f"{count(n)} {word if n == 1 else (many or word + 's')}"


def clock(start: datetime, t: float) -> str:
    """Scenario second ``t`` as wall-clock text (``Mon 10:00``)."""
    return (start + timedelta(seconds=float(t))).strftime("%a %H:%M")


def _length_adjective(seconds: float) -> str:
    """``45-minute``, ``2-hour``, ``90-minute``, ``3-day``, ``30-second``."""
    if seconds < 120:
        return f"{seconds:.0f}-second"
    if seconds % 86400 == 0:
        return f"{seconds / 86400:.0f}-day"
    if seconds % 3600 == 0:
        return f"{seconds / 3600:.0f}-hour"
    return f"{seconds / 60:.0f}-minute"


def time_stretch(run: dict[str, Any]) -> str | None:
    """The live run's one time semantics in a sentence (kernel/trace.py); None for a virtual run."""
    speed = run.get("speed")
    if run.get("engine") != "live" or not speed:
        return None
    return (f"Live run at speed {speed:g}: the configured intervals (OPC UA sampling and publishing, edge scan, "
            f"flush and retry, worker backoff, breaker cooldown, broker ack wait) ran at 1/{speed:g} of their "
            f"scenario values, so the configuration is the scenario's; the chain carried {speed:g} × the plants' "
            f"real rate, and processing time is {speed:g} × longer in scenario time than the same work at speed 1.")


def fault_title(fault: dict[str, Any]) -> str:
    """``45-minute ERP outage (legacy)``."""
    name = FAULT_NAMES.get(fault.get("kind", ""), str(fault.get("kind", "fault")).replace("_", " "))
    length = fault["end"] - fault["start"]
    if length > 0:
        name = f"{_length_adjective(length)} {name}"
    target = fault.get("erp") if fault.get("kind", "").startswith("erp") else fault.get("target")
    return name + (f" ({target})" if target and target != "all" else "")


def _ci(check: dict[str, Any], fmt: Any) -> str:
    if check.get("ci_low") is None:
        return ""
    return f" (95 % CI {fmt(check['ci_low'])}–{fmt(check['ci_high'])})"


def sla_line(sla: dict[str, Any]) -> str | None:
    """One sentence per configured SLA with the number behind it; ``None`` when no threshold is set."""
    if sla["name"] == "recovery_time" and sla["configured"] and sla["status"] == "no_data":
        return "The run had no fault windows, so recovery time was not measured."
    if not sla["configured"] or not sla["checks"]:
        return None
    verdict = {"pass": "met", "breach": "BREACHED", "no_data": "not measured"}[sla["status"]]
    name = sla["name"]
    if name in SUBJECTS:
        subject, verb = SUBJECTS[name]
        if sla["status"] == "no_data":
            return f"No {subject} were recorded, so the {sla['label'].lower()} target could not be checked."
        parts = []
        for c in sla["checks"]:
            share = STAT_WORDS[c["stat"]]
            op = "within" if c["passed"] else "only within"
            parts.append(f"{share} {op} {dur(c['value'])}{_ci(c, dur)} (target {dur(c['threshold'])})")
        line = f"{subject.capitalize()} {verb}: " + "; ".join(parts) + f" — {verdict}."
        if sla.get("unpropagated"):
            line += f" {plural(sla['unpropagated'], 'hold')} never reached the warehouse."
        return line
    c = sla["checks"][0]
    if name == "reconciled_within":
        if c["value"] is None:
            return "No ERP postings were recorded, so reconciliation could not be checked."
        return (f"{c['value'] * 100:.2f} %{_ci(c, lambda v: f'{v * 100:.2f} %')} of ERP postings were reconciled "
                f"within {dur(sla['window'])} (target at least {c['threshold'] * 100:.1f} %) — {verdict}.")
    if name == "recovery_time":
        if sla["unrecovered"]:
            return (f"After at least one fault the integration backlog was not back to normal by the end of the "
                    f"run (target {dur(c['threshold'])}) — {verdict}.")
        return (f"The integration backlog was back to normal at worst {dur(c['value'])}{_ci(c, dur)} after a "
                f"fault ended (target {dur(c['threshold'])}) — {verdict}.")
    if name == "dlq":
        return (f"{plural(c['value'], 'message')} went to the dead-letter queue (limit "
                f"{count(c['threshold'])}) — {verdict}.")
    return None


def fault_line(fault: dict[str, Any], invariants: dict[str, Any], start: datetime) -> str:
    """What happened during one fault, e.g. the executive summary's outage sentence."""
    title = fault_title(fault)
    queued = fault.get("queued") or 0
    if fault["end"] <= fault["start"]:  # an instant fault (process kill): nothing is created "during" it
        text = f"After the {title} at {clock(start, fault['start'])}, {plural(queued, 'posting')} waited"
    else:
        text = f"During the {title} at {clock(start, fault['start'])}, {plural(queued, 'posting')} queued"
    if queued and fault.get("queued_undelivered"):
        text += f"; {count(fault['queued_undelivered'])} were still undelivered at the end of the run"
    elif queued and fault.get("drained_within") is not None:
        every = "all were" if queued > 1 else "it was"
        ending = FAULT_NAMES.get(fault.get("kind", ""), "fault").split()[-1]
        text += f"; {every} delivered within {dur(fault['drained_within'])} of the {ending} ending"
    rec = fault.get("recovery", {}).get("value")
    if fault.get("recovered_all") and rec is not None:
        text += f"; the backlog was back to normal {dur(rec)} after it"
    elif fault.get("next_fault_first"):
        text += "; the next fault began before the backlog was back to normal"
    elif not fault.get("recovered_all"):
        text += "; the backlog had not returned to normal by the end of the run"
    lost = invariants["lost"]["count"]
    dup = invariants["duplicates_posted"]["transactions"]
    if not lost and not dup:
        text += "; none was lost or posted twice."
    else:
        text += f"; over the run {plural(lost, 'transaction')} were lost and {count(dup)} posted more than once."
    return text


def fault_lines(sla: dict[str, Any]) -> list[str]:
    """One sentence per fault of an evaluated run (``sla.json``), for the command line."""
    start = datetime.fromisoformat(str(sla["run"]["start_clock"]))
    return [fault_line(f, sla["invariants"], start) for f in sla["faults"]]


def breaches(sla: dict[str, Any]) -> list[str]:
    """One line per breached SLA or failed invariant, naming it and an example."""
    out = []
    for s in sla["slas"].values():
        if s["status"] != "breach":
            continue
        for c in s["checks"]:
            if c["passed"] is False:
                out.append(_sla_breach(s, c))
    inv = sla["invariants"]
    if not inv["lost"]["passed"]:
        i = inv["lost"]
        why = []
        if i["edge_dropped"]:
            why.append(f"{count(i['edge_dropped'])} dropped by an edge buffer overflow")
        if i["delivered_not_posted"]:
            why.append(f"{count(i['delivered_not_posted'])} delivered but missing from the ERP ledger")
        others = i["count"] - i["edge_dropped"] - i["delivered_not_posted"]
        if others > 0:
            why.append(f"{count(others)} never accounted for")
        out.append(f"lost: {plural(i['count'], 'transaction')} lost ({', '.join(why)}) (e.g. {_eg(i['ids'])})")
    if not inv["duplicates_posted"]["passed"]:
        i = inv["duplicates_posted"]
        times = "twice" if i["max_copies"] == 2 else "more than once"
        erps = ", ".join(i["by_erp"]) or "the ERP"
        out.append(f"duplicates posted: {plural(i['transactions'], 'transaction')} posted {times} to {erps} "
                   f"(e.g. {_eg(i['ids'])})")
    if not inv["held_lots_shipped"]["passed"]:
        i = inv["held_lots_shipped"]
        out.append(f"held lots shipped: {plural(i['count'], 'lot')} shipped while on quality hold "
                   f"(e.g. {_eg(i['ids'])})")
    if not inv["ledger_variance"]["passed"]:
        i = inv["ledger_variance"]
        g = i["groups"][0]
        verb = "differs" if i["count"] == 1 else "differ"
        out.append(f"ledger variance: {plural(i['count'], 'plant/item total')} {verb} between trace and ERP "
                   f"ledger (e.g. {g['plant']}/{g['item']}: trace {count(g['trace_qty'])} vs ledger "
                   f"{count(g['ledger_qty'])}; txn {_eg(i['ids'])})")
    return out


def _eg(ids: list[str]) -> str:
    return ", ".join(ids[:3]) if ids else "n/a"


def _sla_breach(s: dict[str, Any], c: dict[str, Any]) -> str:
    label = s["label"].lower()
    if s["name"] == "reconciled_within":
        return (f"{label}: {c['value'] * 100:.2f} % reconciled within {dur(s['window'])}, below the "
                f"{c['threshold'] * 100:.1f} % target")
    if s["name"] == "dlq":
        return f"{label}: {count(c['value'])} dead-lettered messages, above the limit of {count(c['threshold'])}"
    if s["name"] == "recovery_time" and s.get("unrecovered"):
        return f"{label}: backlog not back to normal by the end of the run (target {dur(c['threshold'])})"
    return f"{label}: {c['stat']} {dur(c['value'])} exceeds the {dur(c['threshold'])} target"
