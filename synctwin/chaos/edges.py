"""Chaos Toolkit actions and probes on an edge's clock and identity: ``module: synctwin.chaos.edges``.

Actions: :func:`skew_edge_clock` (the edge stamps its events with a clock off by minutes),
:func:`start_second_edge` / :func:`stop_second_edge` (a second edge with the same plant credentials posts
the same events at the same time). Probes: :func:`edge_sources` (what the gateway saw: each plant's edge
instances, its clock offset, the episodes it flagged) and :func:`delays_sane` (no posting delay from a
clock in the future). Changes go on the control API's timeline, so the report measures recovery.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from typing import Any

import httpx

from integration.sqlite import connect_readonly
from synctwin.chaos.probes import EffectNotSeen, _poll, _rows
from synctwin.chaos.settings import ChaosConfigError, Target, target

__all__ = ["delays_sane", "edge_sources", "reset_edges", "skew_edge_clock", "start_second_edge", "stop_second_edge"]


def _record(cfg: Target, event: str, what: str, detail: dict[str, Any]) -> None:
    if cfg.control:
        httpx.post(f"{cfg.control}/timeline", json={"event": event, "what": what, **detail}, timeout=10)


def _plant(cfg: Target, plant: str | None) -> str:
    plant = plant or (cfg.plants[0] if cfg.plants else "")
    if not plant:
        raise ChaosConfigError("no plant known: name one, or set synctwin_run_dir of a stack synctwin started")
    return plant


# ------------------------------------------------------------------------------------ clock skew
def skew_edge_clock(skew_s: float, plant: str | None = None,
                    configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Skew ``plant``'s edge clock by ``skew_s`` scenario seconds (+ ahead, - behind; 0 puts it right).
    The running edge picks it up within half a wall second (:mod:`live.edge_clock`)."""
    from live.edge_clock import write_skew

    cfg = target(configuration)
    plant = _plant(cfg, plant)
    write_skew(cfg.state.parent, plant, float(skew_s))
    _record(cfg, "clock_skew", plant, {"skew_s": float(skew_s)})
    return {"plant": plant, "skew_s": float(skew_s)}


# ---------------------------------------------------------------------------------- second edge
class _SecondEdge:
    """Posts every event ``plant``'s edge stores, as soon as it stores it, with the same credentials but
    another instance id -- a second edge reading the same machines."""

    def __init__(self, cfg: Target, plant: str, replay: int):
        key = cfg.credentials.get("plants", {}).get(plant)
        if not key:
            raise ChaosConfigError(f"no API key for plant {plant!r}: set synctwin_run_dir of a stack synctwin started")
        self.cfg, self.plant, self.replay = cfg, plant, replay
        self.instance = f"edge-{plant}-second-{uuid.uuid4().hex[:8]}"
        self.headers = {"X-Api-Key": key, "X-Edge-Instance": self.instance}
        self.stop = threading.Event()
        self.stats: dict[str, Any] = {"instance": self.instance, "requests": Counter(), "events": 0, "duplicates": 0}
        self.thread = threading.Thread(target=self._run, name=f"second-edge-{plant}", daemon=True)

    def _rows(self, after: int) -> list[tuple]:
        sql = ("SELECT rowid, txn_id, correlation_id, flow, line, item, lot, qty, unit, schema_version, t_created, "
               "source, target FROM outbox WHERE rowid > ? AND status != 'rejected' ORDER BY rowid LIMIT 500")
        return _rows(self.cfg.state / f"edge-{self.plant}.sqlite", sql, (after,))

    def _start_after(self) -> int:
        db = connect_readonly(self.cfg.state / f"edge-{self.plant}.sqlite")
        try:
            (last,) = db.execute("SELECT coalesce(max(rowid), 0) FROM outbox").fetchone()
        finally:
            db.close()
        return max(0, int(last) - self.replay)

    def _run(self) -> None:
        from live.edge_poster import payload

        names = ("txn_id", "correlation_id", "flow", "line", "item", "lot", "qty", "unit", "schema_version",
                 "t_created", "source", "target")
        after = self._start_after()
        with httpx.Client(base_url=self.cfg.need("gateway"), timeout=30) as http:
            while not self.stop.is_set():
                rows = self._rows(after)
                if not rows:
                    self.stop.wait(0.2)
                    continue
                after = rows[-1][0]
                events = [payload(dict(zip(names, r[1:], strict=True))) for r in rows]
                version = rows[0][9] or "v2"
                headers = {**self.headers, "X-Edge-Clock": f"{self.cfg.now():.3f}"}
                try:
                    reply = http.post(f"/{version}/events", json=events, headers=headers)
                except httpx.HTTPError as exc:
                    self.stats["requests"][type(exc).__name__] += 1
                    continue
                self.stats["requests"][str(reply.status_code)] += 1
                if reply.status_code == 202:
                    self.stats["events"] += len(events)
                    self.stats["duplicates"] += int(reply.json().get("duplicates", 0))


_RUNNING: dict[str, _SecondEdge] = {}


def start_second_edge(plant: str | None = None, replay: int = 200,
                      configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Start a second edge for ``plant`` with the same credentials: it posts the last ``replay`` events the
    real edge stored, then every new one as the real edge stores it, until :func:`stop_second_edge`."""
    cfg = target(configuration)
    plant = _plant(cfg, plant)
    if plant in _RUNNING:
        raise RuntimeError(f"a second edge for {plant} is already running")
    second = _RUNNING[plant] = _SecondEdge(cfg, plant, replay)
    second.thread.start()
    _record(cfg, "second_edge", plant, {"running": True, "instance": second.instance})
    return {"plant": plant, "instance": second.instance}


def stop_second_edge(plant: str | None = None, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Stop the second edge of ``plant``; what it posted (events, the gateway's duplicate count, statuses)."""
    cfg = target(configuration)
    plant = _plant(cfg, plant)
    second = _RUNNING.pop(plant, None)
    if second is None:
        return {"plant": plant, "running": False}
    second.stop.set()
    second.thread.join(timeout=60)
    _record(cfg, "second_edge", plant, {"running": False, "instance": second.instance})
    return {"plant": plant, **second.stats, "requests": dict(second.stats["requests"])}


def reset_edges(configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every second edge stopped and every skewed edge clock put right (part of the runner's rollback)."""
    cfg = target(configuration)
    stopped = [stop_second_edge(plant, configuration)["plant"] for plant in list(_RUNNING)]
    righted = []
    for path in sorted((cfg.state / "faults").glob("edge-*.json")) if cfg.run_dir is not None else []:
        plant = path.stem.removeprefix("edge-")
        if json.loads(path.read_text()).get("skew_s"):
            skew_edge_clock(0.0, plant, configuration)
            righted.append(plant)
    return {"second_edges_stopped": stopped, "clocks_righted": righted}


# ------------------------------------------------------------------------------------------ probes
def edge_sources(plant: str | None = None, expect_active: int | None = None, expect_skew_flagged: bool | None = None,
                 expect_episode: str | None = None, wait_s: float = 0.0,
                 configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the gateway saw of ``plant``'s edges (``GET /admin/sources``): active instances, clock offset,
    whether its clock is flagged now, and its episodes (``clock_skew``, ``second_source``). With an
    ``expect_...`` (polled up to ``wait_s`` wall seconds), anything else fails the activity."""
    cfg = target(configuration)
    plant = _plant(cfg, plant)
    admin = cfg.credentials.get("admin", "")

    def read() -> dict[str, Any]:
        reply = httpx.get(f"{cfg.need('gateway')}/admin/sources", headers={"X-Api-Key": admin}, timeout=10)
        reply.raise_for_status()
        data = reply.json()
        return {**data["plants"].get(plant, {"active_sources": 0, "sources": [], "clock_skew_flagged": False}),
                "episodes": [e for e in data["episodes"] if e["plant"] == plant]}

    def good(state: dict[str, Any]) -> bool:
        return ((expect_active is None or state["active_sources"] >= expect_active)
                and (expect_skew_flagged is None or state["clock_skew_flagged"] == expect_skew_flagged)
                and (expect_episode is None or any(e["kind"] == expect_episode for e in state["episodes"])))

    state = _poll(read, good, wait_s)
    if not good(state):
        raise EffectNotSeen(f"the gateway's view of {plant}: {state['active_sources']} active sources, clock "
                            f"flagged {state['clock_skew_flagged']}, episodes {state['episodes']} (expected "
                            f"active>={expect_active}, flagged {expect_skew_flagged}, episode {expect_episode})")
    return state


def delays_sane(plant: str | None = None, window_s: float = 600.0, at_least: float = -60.0, min_count: int = 1,
                configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Posting delays (``t_delivered - t_created``) of ``plant``'s postings delivered in the last ``window_s``
    scenario seconds: a delay below ``at_least`` (a creation time in the future: a skewed clock taken at its
    word) or fewer than ``min_count`` postings fails the activity."""
    cfg = target(configuration)
    plant = _plant(cfg, plant)
    sql = ("SELECT txn_id, t_delivered - t_created FROM deliveries WHERE outcome = 'delivered' AND plant = ? "
           "AND t_delivered >= ? AND flow NOT IN ('downtime', 'telemetry')")
    rows = [(t, d) for t, d in _rows(cfg.state / "deliveries.sqlite", sql, (plant, cfg.now() - window_s))
            if d is not None]
    if len(rows) < min_count:
        raise EffectNotSeen(f"{len(rows)} postings of {plant} in the last {window_s:g} s, expected {min_count}")
    worst = min(rows, key=lambda r: r[1])
    if worst[1] < at_least:
        raise EffectNotSeen(f"{worst[0]} has a posting delay of {worst[1]:.0f} s: its t_created is in the future")
    return {"count": len(rows), "min_delay_s": worst[1], "at": time.time()}
