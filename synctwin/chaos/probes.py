"""Chaos Toolkit probes on a live stack: ``provider: {type: python, module: synctwin.chaos.probes, func: ...}``.

Counts "so far" read the stack's durable state while it runs: the edges' outboxes and the workers'
delivery log under ``RUN_DIR/state`` and the ERP ledgers' read API. Probes that a hypothesis checks
after a fault take ``wait_s``: they poll until the value is good (0 lost, 0 backlog) or that many wall
seconds passed, and return the last value -- recovery is part of what the hypothesis asserts.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from integration.sqlite import connect_readonly
from kernel.trace import REASON_EDGE_OVERFLOW
from synctwin.chaos.settings import Target, target

__all__ = ["backlog", "dead_letters", "dlq_size", "duplicate_ids", "duplicates_so_far", "edge_counts_match",
           "erp_state", "gateway_health", "link_state", "lost_ids", "lost_so_far", "mapping_applied",
           "new_duplicate_ids", "opcua_state", "posted_once", "posting_delay", "process_state"]


def _poll(read, good, wait_s: float) -> Any:
    end, pause = time.monotonic() + wait_s, threading.Event()
    while True:
        value = read()
        if good(value) or time.monotonic() >= end:
            return value
        pause.wait(0.25)


def _rows(path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    if not path.is_file():
        return []
    db = connect_readonly(path)
    try:
        return db.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # table not created yet: no traffic yet
        return []
    finally:
        db.close()


# ------------------------------------------------------------------------------------ backlog
def backlog(wait_s: float = 0.0, configuration: dict[str, Any] | None = None) -> int:
    """Events not finished yet: pending in the edges' outboxes plus the workers' backlog at the broker
    (-1 when the broker cannot be read, e.g. while it is down)."""
    cfg = target(configuration)
    return _poll(lambda: _backlog(cfg), lambda n: n == 0, wait_s)


def _backlog(cfg: Target) -> int:
    from live.backlog import consumer_backlog

    edges = sum(n for p in cfg.state.glob("edge-*.sqlite")
                for (n,) in _rows(p, "SELECT count(*) FROM outbox WHERE status = 'pending'"))
    broker = asyncio.run(consumer_backlog(cfg.need("broker")))
    return -1 if broker < 0 else edges + broker


# --------------------------------------------------------------------------------- lost events
def lost_ids(older_than_s: float = 120.0, configuration: dict[str, Any] | None = None) -> list[str]:
    """Events an edge dropped (its buffer's overflow policy), and events it sent (gateway answered 202) at
    least ``older_than_s`` scenario seconds ago that no worker has finished (posted, suppressed or
    dead-lettered) and no ERP ledger holds."""
    cfg = target(configuration)
    cutoff = cfg.now() - older_than_s
    edges = list(cfg.state.glob("edge-*.sqlite"))
    dropped = {t for p in edges for (t,) in _rows(p, "SELECT txn_id FROM outbox WHERE reason = ?",
                                                   (REASON_EDGE_OVERFLOW,))}
    sent = {t for p in edges
            for (t,) in _rows(p, "SELECT txn_id FROM outbox WHERE status = 'sent' AND t_sent <= ?", (cutoff,))}
    done = {t for (t,) in _rows(cfg.state / "deliveries.sqlite", "SELECT DISTINCT txn_id FROM deliveries")}
    missing = sent - done
    if missing:
        missing -= set(_ledger_counts(cfg))
    return sorted(missing | dropped)


def lost_so_far(older_than_s: float = 120.0, wait_s: float = 0.0,
                configuration: dict[str, Any] | None = None) -> int:
    """How many events :func:`lost_ids` lists (polled up to ``wait_s`` wall seconds until 0)."""
    return _poll(lambda: len(lost_ids(older_than_s, configuration)), lambda n: n == 0, wait_s)


# --------------------------------------------------------------------------------- duplicates
_LEDGERS: dict[str, tuple[int, Counter]] = {}  # ERP URL -> (last row id read, postings per txn id)
_LEDGER_LOCK = threading.Lock()
_PAGE = 50_000


def _ledger_counts(cfg: Target) -> Counter:
    """Postings per txn id over every ERP ledger, read incrementally through ``GET /ledger``."""
    total: Counter = Counter()
    with _LEDGER_LOCK:
        for url in cfg.erps.values():
            after, counts = _LEDGERS.get(url, (0, Counter()))
            while True:
                page = httpx.get(f"{url}/ledger", params={"after": after, "limit": _PAGE}, timeout=30).json()
                rows = page.get("rows", [])
                counts.update(r["txn_id"] for r in rows)
                after = page.get("next_after", after) if rows else after
                if len(rows) < _PAGE:  # caught up; under load new rows keep coming, so "empty" may never be seen
                    break
            _LEDGERS[url] = (after, counts)
            total.update(counts)
    return total


def duplicate_ids(configuration: dict[str, Any] | None = None) -> list[str]:
    """Transactions the ERP ledgers hold more than once (the ERP twin does not de-duplicate)."""
    return sorted(t for t, n in _ledger_counts(target(configuration)).items() if n > 1)


def duplicates_so_far(configuration: dict[str, Any] | None = None) -> int:
    """How many transactions were posted more than once so far."""
    return len(duplicate_ids(configuration))


_BASELINES: dict[tuple[str, str], set[str]] = {}  # (stack, mark) -> duplicated ids at the first check


def new_duplicate_ids(mark: str = "", configuration: dict[str, Any] | None = None) -> list[str]:
    """Transactions posted more than once since the first call with this ``mark`` (default: the running
    experiment) -- the steady-state check of one experiment among several on one stack, when an earlier
    one may have left duplicates; tolerance ``[[]]`` (none). The first call notes the baseline."""
    cfg = dict(configuration or {})
    key = (str(cfg.get("synctwin_run_dir") or cfg.get("erp_url") or ""), mark or cfg.get("synctwin_experiment", ""))
    now = set(duplicate_ids(configuration))
    base = _BASELINES.setdefault(key, now)
    return sorted(now - base)


# ------------------------------------------------------------------------------------ latency
def posting_delay(flow: str = "all", quantile: float = 0.99, window_s: float = 600.0,
                  configuration: dict[str, Any] | None = None) -> float:
    """The ``quantile`` of posting delay (``t_delivered - t_created``, scenario seconds) of ``flow`` (or
    all flows) over postings delivered in the last ``window_s`` scenario seconds; infinity when none
    was delivered in that window (a stalled flow must not pass for a fast one)."""
    cfg = target(configuration)
    since = cfg.now() - window_s
    sql = "SELECT t_delivered - t_created FROM deliveries WHERE outcome = 'delivered' AND t_delivered >= ?"
    args: tuple = (since,)
    if flow != "all":
        sql += " AND flow = ?"
        args += (flow,)
    delays = [d for (d,) in _rows(cfg.state / "deliveries.sqlite", sql, args) if d is not None]
    return float(np.quantile(delays, quantile)) if delays else float("inf")


def dead_letters(reason: str | None = None, at_least: int = 0, wait_s: float = 0.0,
                 configuration: dict[str, Any] | None = None) -> int:
    """Copies the workers dead-lettered so far (of one ``reason``), polled up to ``wait_s`` wall seconds until
    there are ``at_least``; fewer fails the activity."""
    sql, args = "SELECT count(*) FROM deliveries WHERE outcome = 'dead_lettered'", ()
    if reason:
        sql, args = sql + " AND reason = ?", (reason,)
    path = target(configuration).state / "deliveries.sqlite"

    def count() -> int:
        rows = _rows(path, sql, args)
        return int(rows[0][0]) if rows else 0

    n = _poll(count, lambda n: n >= at_least, wait_s)
    if n < at_least:
        raise EffectNotSeen(f"{n} dead letters{f' ({reason})' if reason else ''}, expected at least {at_least}")
    return n


def dlq_size(reason: str | None = None, at_least: int | None = None, at_most: int | None = None,
             wait_s: float = 0.0, configuration: dict[str, Any] | None = None) -> int:
    """Messages in the gateway's dead-letter queue (of one ``reason``), polled up to ``wait_s`` wall seconds
    until the count is within ``at_least``..``at_most``; outside it fails the activity."""
    cfg = target(configuration)
    admin = cfg.credentials.get("admin", "")

    def count() -> int:
        reply = httpx.get(f"{cfg.need('gateway')}/admin/dlq", params={"limit": 100_000},
                          headers={"X-Api-Key": admin}, timeout=30)
        reply.raise_for_status()
        return sum(1 for m in reply.json()["messages"] if reason is None or m["reason"] == reason)

    def good(n: int) -> bool:
        return (at_least is None or n >= at_least) and (at_most is None or n <= at_most)

    n = _poll(count, good, wait_s)
    if not good(n):
        raise EffectNotSeen(f"{n} dead letters{f' ({reason})' if reason else ''} in the DLQ, expected "
                            f"{at_least if at_least is not None else 0}..{at_most if at_most is not None else 'any'}")
    return n


def mapping_applied(wait_s: float = 0.0, configuration: dict[str, Any] | None = None) -> int:
    """The version of the run's mapping changes the workers confirmed, polled up to ``wait_s`` wall seconds
    until it is the latest written; an older one fails the activity."""
    from integration.workers.mapping_reload import APPLIED_FILE, read_fixes

    state = target(configuration).state
    latest = int(read_fixes(state.parent).get("version", 0))

    def applied() -> int:
        try:
            return int(json.loads((state / APPLIED_FILE).read_text())["version"])
        except (OSError, ValueError, KeyError):
            return 0

    version = _poll(applied, lambda v: v >= latest, wait_s)
    if version < latest:
        raise EffectNotSeen(f"the workers applied mapping version {version}, the latest is {latest}")
    return version


def posted_once(prefix: str, at_least: int = 1, wait_s: float = 0.0,
                configuration: dict[str, Any] | None = None) -> int:
    """How many transactions whose id starts with ``prefix`` the ERP ledgers hold, polled up to ``wait_s``
    wall seconds until ``at_least``; fewer, or any of them held twice, fails the activity."""
    cfg = target(configuration)

    def counts() -> dict[str, int]:
        return {t: n for t, n in _ledger_counts(cfg).items() if t.startswith(prefix)}

    found = _poll(counts, lambda c: len(c) >= at_least, wait_s)
    twice = sorted(t for t, n in found.items() if n > 1)
    if twice:
        raise EffectNotSeen(f"posted more than once: {', '.join(twice[:10])}")
    if len(found) < at_least:
        raise EffectNotSeen(f"{len(found)} transactions {prefix}* in the ledger, expected at least {at_least}")
    return len(found)


# ------------------------------------------------------------------------------- services, links
def gateway_health(configuration: dict[str, Any] | None = None) -> str:
    """``ok`` when the gateway answers ``/health`` with 200, else ``down`` (or the status it gave)."""
    try:
        reply = httpx.get(f"{target(configuration).need('gateway')}/health", timeout=3)
    except httpx.HTTPError:
        return "down"
    return "ok" if reply.status_code == 200 else f"status {reply.status_code}"


class EffectNotSeen(AssertionError):
    """A probe given ``expect...`` did not see the fault's effect (the activity fails in the journal)."""


def process_state(name: str, expect: str | None = None, wait_s: float = 0.0,
                  configuration: dict[str, Any] | None = None) -> str:
    """``running``, ``killed``, ``restarting`` or ``dead`` for a process of the stack (by name or role);
    with ``expect`` (polled up to ``wait_s`` wall seconds), anything else fails the activity."""
    cfg = target(configuration)

    def read() -> str:
        return httpx.get(f"{cfg.need('control')}/processes/{name}", timeout=10).json()["state"]

    state = _poll(read, lambda s: expect is None or s == expect, wait_s)
    if expect is not None and state != expect:
        raise EffectNotSeen(f"process {name} is {state}, expected {expect}")
    return state


def link_state(link: str, expect_enabled: bool | None = None, expect_toxic: str | None = None,
               configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The link as Toxiproxy shows a proxy: ``enabled``, ``toxics`` (plus ``connections``, ``refused``);
    with ``expect_enabled`` / ``expect_toxic`` (a toxic type), a link not in that state fails the activity."""
    cfg = target(configuration)
    state = httpx.get(f"{cfg.need('control')}/proxies/{link}", timeout=10).json()
    if expect_enabled is not None and state.get("enabled") != expect_enabled:
        raise EffectNotSeen(f"link {link} enabled={state.get('enabled')}, expected {expect_enabled}")
    if expect_toxic is not None and expect_toxic not in [t["type"] for t in state.get("toxics", [])]:
        raise EffectNotSeen(f"link {link} has no {expect_toxic} toxic: {state.get('toxics')}")
    return state


def erp_state(erp: str = "", expect_mode: str | None = None, expect_injected: str | None = None,
              configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """An ERP twin's mode and what its fault modes injected so far (``injected.answers_lost`` ...); with
    ``expect_mode`` or ``expect_injected`` (throttled, errors, answers_lost: at least one), the activity fails
    when the ERP is not in that mode or injected none."""
    cfg = target(configuration)
    kind = erp or next(iter(cfg.erps))
    state = httpx.get(f"{cfg.erps[kind]}/admin/mode", timeout=10).json()
    if expect_mode is not None and state.get("mode") != expect_mode:
        raise EffectNotSeen(f"ERP {kind} is in mode {state.get('mode')}, expected {expect_mode}")
    if expect_injected is not None and not state.get("injected", {}).get(expect_injected):
        raise EffectNotSeen(f"ERP {kind} injected no {expect_injected} yet: {state.get('injected')}")
    return state


# ------------------------------------------------------------------------------------- OPC UA
def _plant_faults(cfg: Target, plant: str) -> dict[str, Any]:
    """The plant OPC UA host's fault state (:mod:`live.opcua_faults`), read from its endpoint."""
    import json

    from live.opcua_faults import control_file

    path = control_file(cfg.state.parent, plant)
    if not path.is_file():
        raise EffectNotSeen(f"plant {plant} has no OPC UA fault endpoint ({path.name} missing)")
    return httpx.get(f"{json.loads(path.read_text())['control']}/faults", timeout=10).json()


def opcua_state(plant: str, expect_stalled: bool | None = None, expect_drops: int | None = None,
                wait_s: float = 0.0, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """Plant ``plant``'s OPC UA server: sessions open, session drops so far, whether it stalls, the PLC's
    counter totals. With ``expect_stalled`` / ``expect_drops`` (at least that many drops and a session open
    again: the edge came back), polled up to ``wait_s`` wall seconds, anything else fails the activity."""
    cfg = target(configuration)

    def good(state: dict[str, Any]) -> bool:
        return ((expect_stalled is None or state["stalled"] == expect_stalled)
                and (expect_drops is None or (state["drops"] >= expect_drops and state["sessions"] >= 1)))

    state = _poll(lambda: _plant_faults(cfg, plant), good, wait_s)
    if not good(state):
        raise EffectNotSeen(f"OPC UA server of {plant}: {state}, expected stalled={expect_stalled}, "
                            f"drops>={expect_drops} with a session open")
    return state


def edge_counts_match(plant: str, wait_s: float = 30.0, configuration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The plant's edge has counted every unit its PLC counted, once: it reaches the PLC's good total read
    now (polled up to ``wait_s``), never exceeds the total read after, and the units it confirmed or holds
    pending equal the counter positions it read (a doubled or negative delta breaks that). For a plant whose
    OPC UA server did not restart in the run (a restart starts its counters again at zero)."""
    import json

    cfg = target(configuration)
    plc = _plant_faults(cfg, plant)["good_total"]
    db_path = cfg.state / f"edge-{plant}.sqlite"

    def edge() -> dict[str, int]:
        db = connect_readonly(db_path)
        try:  # one read transaction: the edge commits its events and its state together
            db.execute("BEGIN")
            row = db.execute("SELECT state FROM edge_state WHERE id = 1").fetchone()
            (confirmed,) = db.execute("SELECT coalesce(sum(qty), 0) FROM outbox "
                                      "WHERE flow = 'operation_confirmation'").fetchone()
        finally:
            db.close()
        state = json.loads(row[0]) if row else {"last_good": [0], "pend_good": [0]}
        return {"read": sum(state["last_good"]), "counted": int(confirmed) + sum(state["pend_good"])}

    seen = _poll(edge, lambda e: e["read"] >= plc, wait_s)
    after = _plant_faults(cfg, plant)["good_total"]
    out = {"plc_before": plc, "edge_read": seen["read"], "edge_counted": seen["counted"], "plc_after": after}
    if not plc <= seen["read"] <= after or seen["counted"] != seen["read"]:
        raise EffectNotSeen(f"edge {plant} counts do not match its PLC's: {out}")
    return out
