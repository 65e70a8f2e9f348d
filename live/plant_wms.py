"""The plant's live WMS: puts completed lots away, ships them, and refuses to ship a lot on quality hold.

It runs inside the plant's edge process on the edge's SQLite store, so a shipment and the WMS state that
caused it commit in one transaction with the outbox row that carries it to the ERP (through the gateway,
like every plant-to-enterprise event). Tables:

- ``wms_lots``: one row per lot -- its goods receipt, when the warehouse plans to ship it
  (``t_completed`` + an exponential ``load.ship_delay``, as :func:`twins.wms.ship_times` draws it), the
  quality messages that reached the plant (``t_hold_at_wms``, ``t_release_at_wms``, with the QMS's decision
  times ``t_hold`` / ``t_release``), a refused attempt (``t_refused``) and the shipment (``t_shipped``);
- ``downlink_inbox``: every enterprise message applied, by ``txn_id`` -- a copy delivered again is
  answered as a duplicate and changes nothing.

Shipping rule (the virtual engine's, :func:`twins.wms.ship_times`): a lot ships when its plan is due; with
``landscape.integration.quality_gate`` a lot that needs inspection waits for its release; a lot whose hold
reached the WMS (and no release yet) is never shipped: the attempt is refused once, stored as a ``rejected``
shipment row with reason :data:`kernel.trace.REASON_LOT_ON_HOLD`, and the lot ships after its release.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from integration.mapping import PlantMapping
from kernel.trace import (
    GOODS_RECEIPT,
    MASTER_DATA,
    ORDER_RELEASE,
    QUALITY_HOLD,
    QUALITY_RELEASE,
    REASON_LOT_ON_HOLD,
    SHIPMENT,
)
from live.edge_store import PENDING, REJECTED, EdgeStore, OutboxEvent
from live.plant_mes import PlantMes, orderable_items
from scenarios.generator import plant_seed
from scenarios.spec import Scenario

_STREAM = 0x3315  # the WMS's own draws (ship plans), independent of the plant's other streams

_SCHEMA = """
CREATE TABLE IF NOT EXISTS wms_lots (
    lot TEXT PRIMARY KEY, line TEXT, item TEXT, qty REAL, unit TEXT, t_completed REAL,
    requires_inspection INTEGER DEFAULT 0, t_planned REAL, t_hold REAL, t_hold_at_wms REAL, t_release REAL,
    t_release_at_wms REAL, t_refused REAL, t_shipped REAL
);
CREATE INDEX IF NOT EXISTS wms_lots_open ON wms_lots(t_shipped, t_planned);
CREATE TABLE IF NOT EXISTS downlink_inbox (
    txn_id TEXT PRIMARY KEY, flow TEXT, lot TEXT, t_created REAL, t_received REAL
);
"""


@dataclass(frozen=True)
class WmsConfig:
    """What the plant's WMS needs from the scenario."""

    plant: str
    schema_version: str
    ship_delay: float
    quality_gate: bool
    duration: float  # no shipment is planned after the run's end
    inspected_items: frozenset[str] = field(default_factory=frozenset)  # plant item codes that need inspection
    seed: int = 0
    orderable_items: frozenset[str] = field(default_factory=frozenset)  # products the MES takes orders for
    mes_ack: float = 0.0  # scenario seconds the MES validates an order before acknowledging it

    @classmethod
    def from_scenario(cls, scenario: Scenario, plant_id: str) -> WmsConfig:
        """The WMS settings of ``plant_id`` (its inspected items through the plant's item mapping)."""
        plants = scenario.landscape.all_plants
        index = next(i for i, p in enumerate(plants) if p.id == plant_id)
        plant = plants[index]
        master = scenario.landscape.items
        mapping = PlantMapping.from_spec(plant, master)
        inspected = frozenset(p for p in plant.products
                              if (c := mapping.items.get(p)) in master and master[c].inspection)
        seed = int(plant_seed(scenario, index, stream=_STREAM).generate_state(1)[0])
        return cls(plant.id, plant.schema_version, scenario.load.ship_delay,
                   scenario.landscape.integration.quality_gate, scenario.run.duration, inspected, seed,
                   orderable_items(scenario, plant.id), scenario.load.mes_ack)


class PlantWms:
    """The WMS of one plant on ``store`` (the edge's SQLite outbox)."""

    def __init__(self, config: WmsConfig, store: EdgeStore):
        self.cfg, self.store, self.db = config, store, store.db
        self.db.executescript(_SCHEMA)
        self.rng = np.random.default_rng(config.seed)
        self.mes = PlantMes(config.plant, config.schema_version, config.orderable_items, store, config.mes_ack)
        self.refused = 0
        self.shipped = 0

    # ----------------------------------------------------------------------------------- putaway
    def putaway(self, events: list[OutboxEvent]) -> int:
        """Take the goods receipts among ``events`` into stock and plan their shipment; returns how many."""
        lots = [e for e in events if e.flow == GOODS_RECEIPT and e.lot]
        if not lots:
            return 0
        with self.store.transaction():
            for e in lots:
                self._upsert_receipt(e.lot, e.line, e.item, e.qty, e.unit, e.t_created)
        return len(lots)

    def recover(self) -> int:
        """After a restart: put away goods receipts the outbox holds but the WMS has not seen."""
        rows = self.db.execute(
            "SELECT lot, line, item, qty, unit, t_created FROM outbox WHERE flow=? AND lot != '' AND lot NOT IN "
            "(SELECT lot FROM wms_lots WHERE t_completed IS NOT NULL)", (GOODS_RECEIPT,)).fetchall()
        if rows:
            with self.store.transaction():
                for row in rows:
                    self._upsert_receipt(*row)
        return len(rows)

    def _upsert_receipt(self, lot: str, line: str, item: str, qty: float, unit: str, t_completed: float) -> None:
        delay = self.rng.exponential(self.cfg.ship_delay) if self.cfg.ship_delay else 0.0
        self.db.execute("INSERT OR IGNORE INTO wms_lots (lot) VALUES (?)", (lot,))
        self.db.execute(
            "UPDATE wms_lots SET line=?, item=?, qty=?, unit=?, t_completed=?, requires_inspection=?, t_planned=? "
            "WHERE lot=? AND t_completed IS NULL",
            (line, item, qty, unit, t_completed, item in self.cfg.inspected_items, t_completed + delay, lot))

    # ----------------------------------------------------------------------------------- quality
    def apply(self, messages: list[dict], now: float) -> list[dict]:
        """Apply enterprise messages in the order given, each once by ``txn_id``: quality holds / releases here
        and at the MES, order releases and master data at the MES (:mod:`live.plant_mes`). One answer per
        message: ``{"txn_id", "status": "applied" | "rejected" | "duplicate", "reason", "t_received"}``
        (``t_received``: when it first arrived)."""
        answers = []
        with self.store.transaction():
            for m in messages:
                txn = str(m["txn_id"])
                first = self.db.execute(
                    "INSERT OR IGNORE INTO downlink_inbox (txn_id, flow, lot, t_created, t_received) "
                    "VALUES (?,?,?,?,?)", (txn, m["flow"], m.get("lot", ""), m.get("t_created"), now)).rowcount
                if first:
                    if m["flow"] == ORDER_RELEASE:
                        status, reason = self.mes.accept(m, now)
                    elif m["flow"] == MASTER_DATA:
                        status, reason = self.mes.master_data(m, now)
                    else:
                        status, reason = self._apply_quality(m, now)
                    answers.append({"txn_id": txn, "status": status, "reason": reason, "t_received": now})
                else:
                    (t_received,) = self.db.execute("SELECT t_received FROM downlink_inbox WHERE txn_id=?",
                                                    (txn,)).fetchone()
                    answers.append({"txn_id": txn, "status": "duplicate", "reason": "", "t_received": t_received})
        return answers

    def _apply_quality(self, m: dict, now: float) -> tuple[str, str]:
        lot = m.get("lot") or ""
        self.db.execute("INSERT OR IGNORE INTO wms_lots (lot) VALUES (?)", (lot,))
        if m["flow"] == QUALITY_HOLD:
            # A hold arriving after its lot's release (a redelivered copy overtaken) must not block it again.
            self.db.execute("UPDATE wms_lots SET t_hold=?, t_hold_at_wms=? WHERE lot=? AND t_release_at_wms IS NULL",
                            (m.get("t_created"), now, lot))
        elif m["flow"] == QUALITY_RELEASE:
            self.db.execute("UPDATE wms_lots SET t_release=?, t_release_at_wms=? WHERE lot=?",
                            (m.get("t_created"), now, lot))
        else:
            raise ValueError(f"flow {m['flow']!r}: the plant takes quality_hold, quality_release and order_release")
        self.mes.quality(m, now)  # one delivery to the plant serves its WMS and its MES (same transaction)
        return "applied", ""

    # ---------------------------------------------------------------------------------- shipping
    def ship_due(self, now: float) -> tuple[int, int]:
        """Ship every lot whose plan is due and that may leave; refuse (once) each held one.
        Returns (shipped, refused) of this call."""
        rows = self.db.execute(
            "SELECT lot, line, item, qty, unit, requires_inspection, t_hold_at_wms, t_release_at_wms, t_refused "
            "FROM wms_lots WHERE t_shipped IS NULL AND t_planned <= ? AND t_planned <= ?",
            (now, self.cfg.duration)).fetchall()
        shipped = refused = 0
        due = []
        for lot, line, item, qty, unit, inspect, hold_at, release_at, t_refused in rows:
            on_hold = hold_at is not None and release_at is None
            if on_hold and t_refused is None:
                due.append((False, lot, line, item, qty, unit))
            elif not on_hold and not (self.cfg.quality_gate and inspect and release_at is None):
                due.append((True, lot, line, item, qty, unit))  # (gated lots wait for their disposition)
        if not due:
            return 0, 0
        with self.store.transaction():
            for ship, lot, line, item, qty, unit in due:
                if ship:
                    self.store.insert(self._event(f"SH-{lot}", lot, line, item, qty, unit, now), now, PENDING)
                    self.db.execute("UPDATE wms_lots SET t_shipped=? WHERE lot=?", (now, lot))
                    shipped += 1
                else:
                    self.store.insert(self._event(f"SHX-{lot}", lot, line, item, qty, unit, now), now,
                                      REJECTED, REASON_LOT_ON_HOLD)
                    self.db.execute("UPDATE wms_lots SET t_refused=? WHERE lot=?", (now, lot))
                    refused += 1
        self.shipped += shipped
        self.refused += refused
        return shipped, refused

    def _event(self, txn: str, lot: str, line: str, item: str, qty: float, unit: str, t: float) -> OutboxEvent:
        return OutboxEvent(txn_id=txn, correlation_id=lot, flow=SHIPMENT, plant=self.cfg.plant,
                           line=line or "", item=item, lot=lot, qty=float(qty), unit=unit,
                           schema_version=self.cfg.schema_version, t_created=float(t), source="WMS")

    def lots(self) -> list[dict]:
        """Every lot row (for collection and tests)."""
        cur = self.db.execute("SELECT * FROM wms_lots ORDER BY t_completed")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
