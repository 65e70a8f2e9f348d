"""The live QMS: decides quality holds and releases on inspected goods receipts, and publishes them.

It learns of a lot as the virtual QMS does, from its goods receipt in the broker (a durable JetStream
consumer per plant on ``events.<plant>.goods_receipt``; the lot is known at the message's ``t_broker``),
and decides with the same model, :func:`twins.qms.disposition` (inspection and hold durations of
``load``, hold rates of the item master), on its own seeded stream per plant. A decision is stored in
``state/qms.sqlite`` before the goods receipt is acknowledged, so a restarted QMS neither forgets nor
redraws one.

At each decision's time (scenario clock) the hold or the release is published as a durable message on
``downlink.<plant>.<flow>`` (stream ``DOWNLINK``, :mod:`live.downlink`) with its ``txn_id`` as the broker's
de-duplication key, then marked sent: a crash in between republishes a copy the broker drops. A lot's
release is published after its hold, so the plant receives them in that order. Nothing is decided for
after the run's end (those stay undecided, as in the virtual engine's last window).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from integration.broker import EVENTS_STREAM, broker_time, event_subject
from integration.mapping import PlantMapping
from integration.sqlite import connect
from kernel.clock import ScaledClock
from kernel.trace import GOODS_RECEIPT, QUALITY_HOLD, QUALITY_RELEASE
from live.downlink import publish_downlink
from scenarios.generator import plant_seed
from scenarios.spec import Scenario
from twins import qms

_STREAM = 0x0A5  # the QMS's draws, independent of the plant's machine bank and bursts

_SCHEMA = """
CREATE TABLE IF NOT EXISTS qms_lots (
    lot TEXT PRIMARY KEY, plant TEXT, line TEXT, item TEXT, t_known REAL, requires_inspection INTEGER,
    held INTEGER, t_hold REAL, t_release REAL, hold_sent REAL, release_sent REAL
);
CREATE INDEX IF NOT EXISTS qms_hold_due ON qms_lots(hold_sent, t_hold);
CREATE INDEX IF NOT EXISTS qms_release_due ON qms_lots(release_sent, t_release);
"""


def hold_txn(lot: str) -> str:
    """The ``txn_id`` of ``lot``'s quality hold (its release: :func:`release_txn`)."""
    return f"QH-{lot}"


def release_txn(lot: str) -> str:
    return f"QR-{lot}"


@dataclass(frozen=True)
class _PlantRules:
    inspect: dict[str, bool]  # plant item -> needs inspection
    hold_rate: dict[str, float]  # plant item -> share of inspected lots held


class QmsStore:
    """The QMS's decisions (``state/qms.sqlite``)."""

    def __init__(self, path: Path):
        self.db = connect(path)
        self.db.executescript(_SCHEMA)

    def decide(self, rows: list[tuple]) -> None:
        """Store decisions (lot, plant, line, item, t_known, inspect, held, t_hold, t_release); a lot already
        decided keeps its first decision."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR IGNORE INTO qms_lots VALUES (?,?,?,?,?,?,?,?,?,NULL,NULL)", rows)

    def due(self, now: float) -> list[tuple[str, dict[str, Any]]]:
        """Messages due by ``now`` and not yet sent, holds before releases, each in decision order."""
        out = []
        cols = "lot, plant, line, item"
        for flow, when, sent, txn in ((QUALITY_HOLD, "t_hold", "hold_sent", hold_txn),
                                      (QUALITY_RELEASE, "t_release", "release_sent", release_txn)):
            cond = "held = 1 AND " if flow == QUALITY_HOLD else "requires_inspection = 1 AND "
            for lot, plant, line, item, t in self.db.execute(
                    f"SELECT {cols}, {when} FROM qms_lots WHERE {cond}{sent} IS NULL AND {when} <= ? "
                    f"ORDER BY {when}", (now,)):
                out.append((plant, {"txn_id": txn(lot), "flow": flow, "lot": lot, "item": item, "line": line,
                                    "t_created": t}))
        return out

    def mark_sent(self, messages: list[dict[str, Any]], now: float) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for m in messages:
                col = "hold_sent" if m["flow"] == QUALITY_HOLD else "release_sent"
                self.db.execute(f"UPDATE qms_lots SET {col}=? WHERE lot=?", (now, m["lot"]))

    def close(self) -> None:
        self.db.close()


class Qms:
    """Decides on goods receipts of ``scenario``'s plants and publishes the due messages."""

    def __init__(self, scenario: Scenario, run_dir: Path, clock: ScaledClock):
        self.scenario, self.clock = scenario, clock
        self.store = QmsStore(Path(run_dir) / "state" / "qms.sqlite")
        master = scenario.landscape.items
        self.rules: dict[str, _PlantRules] = {}
        self.rngs: dict[str, np.random.Generator] = {}
        for i, plant in enumerate(scenario.landscape.all_plants):
            items = PlantMapping.from_spec(plant, master).items
            canon = {p: items.get(p) for p in plant.products}
            self.rules[plant.id] = _PlantRules(
                {p: bool(c in master and master[c].inspection) for p, c in canon.items()},
                {p: float(master[c].hold_rate) if c in master else 0.0 for p, c in canon.items()})
            self.rngs[plant.id] = np.random.default_rng(plant_seed(scenario, i, stream=_STREAM))
        self.published = 0

    def subjects(self) -> dict[str, str]:
        """Per plant, the goods-receipt subject the QMS reads (stream ``EVENTS``)."""
        return {p.id: event_subject(p.id, GOODS_RECEIPT) for p in self.scenario.landscape.all_plants}

    @staticmethod
    def stream() -> str:
        return EVENTS_STREAM

    def on_receipts(self, plant: str, msgs: list[Any]) -> None:
        """Decide on a batch of goods-receipt messages of ``plant`` (stored before the caller acks them)."""
        rules, events = self.rules[plant], []
        for msg in msgs:
            body = json.loads(msg.data)
            if body.get("lot"):
                events.append((body, broker_time(msg, self.clock)))
        if not events:
            return
        items = [b.get("item", "") for b, _ in events]
        known = np.array([t for _, t in events])
        load = self.scenario.load
        result = qms.disposition(known, np.array([rules.inspect.get(i, False) for i in items]),
                                 np.array([rules.hold_rate.get(i, 0.0) for i in items]),
                                 load.inspection_time, load.hold_duration, self.rngs[plant])
        self.store.decide([
            (b["lot"], plant, b.get("line", ""), items[k], float(known[k]), bool(result.requires_inspection[k]),
             bool(result.held[k]), _num(result.t_hold[k]), _num(result.t_release[k]))
            for k, (b, _) in enumerate(events)])

    async def publish_due(self, js: Any, horizon: float) -> int:
        """Publish every message due by now (never one dated after ``horizon``, the run's end)."""
        now = self.clock.now()
        due = self.store.due(min(now, horizon))
        for plant, message in due:
            await publish_downlink(js, {**message, "plant": plant})
        if due:
            self.store.mark_sent([m for _, m in due], now)
            self.published += len(due)
        return len(due)


def _num(x: float) -> float | None:
    return None if np.isnan(x) else float(x)
