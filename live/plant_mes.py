"""The plant's live MES side of the downlink: takes released production orders and acknowledges them,
applies the ERP's master-data versions, and keeps each lot's quality status from the QMS's holds and releases.

Runs inside the edge process on the edge's store, called by :meth:`live.plant_wms.PlantWms.apply` inside
its transaction (so the order, its ack and the inbox row commit together). An order for an item the
plant's MES does not know (its item mapping does not release it to the plant) is rejected, as in the
virtual engine (reason ``order_item_not_released_to_plant``). An accepted order is acknowledged back to
the ERP as an uplink event through the edge's outbox: ``ACK-<order txn_id>``, flow ``order_release``,
source MES, target ERP, once the MES's validation time (``load.mes_ack``) after the order's arrival has
passed (:meth:`PlantMes.ack_due`, on the edge's tick); its hand-off by the workers is the order's ``t_acked``
(``live/collect_downlink.py``). A quality hold or release reaches the MES in the same delivery and
transaction as the WMS (:meth:`PlantMes.quality`, table ``mes_lot_quality``): the MES reports a lot as
``held`` or ``released`` (:meth:`PlantMes.lot_status`); a hold arriving after its lot's release does not
hold the lot again, as at the WMS.
"""

from __future__ import annotations

from integration.mapping import Mapped, PlantMapping
from kernel.trace import ORDER_RELEASE, QUALITY_HOLD
from live.edge_store import PENDING, EdgeStore, OutboxEvent
from scenarios.spec import Scenario

REASON_NOT_RELEASED_TO_PLANT = "order_item_not_released_to_plant"
ACK_PREFIX = "ACK-"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mes_orders (
    txn_id TEXT PRIMARY KEY, line TEXT, item TEXT, qty REAL, t_released REAL, t_received REAL, accepted INTEGER,
    unit TEXT, t_ack_due REAL, t_acked REAL
);
CREATE TABLE IF NOT EXISTS mes_master_data (txn_id TEXT PRIMARY KEY, version INTEGER, t_released REAL,
                                            t_received REAL);
CREATE TABLE IF NOT EXISTS mes_lot_quality (lot TEXT PRIMARY KEY, status TEXT, t_hold_at_mes REAL,
                                            t_release_at_mes REAL);
"""
HELD, RELEASED = "held", "released"


def orderable_items(scenario: Scenario, plant_id: str) -> frozenset[str]:
    """The plant's products its mapping releases to the plant (mapped to an item of the master)."""
    plant = next(p for p in scenario.landscape.all_plants if p.id == plant_id)
    mapping = PlantMapping.from_spec(plant, scenario.landscape.items)
    return frozenset(p for p in plant.products if isinstance(mapping.map_one(p, 1, plant.unit), Mapped))


class PlantMes:
    """Order intake of one plant's MES on ``store``."""

    def __init__(self, plant: str, schema_version: str, orderable: frozenset[str], store: EdgeStore,
                 ack_delay: float = 0.0):
        self.plant, self.schema_version, self.orderable, self.store = plant, schema_version, orderable, store
        self.ack_delay = ack_delay  # scenario seconds the MES takes to validate an order before acknowledging
        store.db.executescript(_SCHEMA)
        self.accepted = 0

    def accept(self, m: dict, now: float) -> tuple[str, str]:
        """Take order ``m`` (inside the caller's transaction); returns ("applied", "") or ("rejected", reason).
        An accepted order is acknowledged at once when the MES takes no validation time, else by :meth:`ack_due`."""
        ok = m.get("item", "") in self.orderable
        self.store.db.execute("INSERT OR IGNORE INTO mes_orders VALUES (?,?,?,?,?,?,?,?,?,NULL)",
                              (m["txn_id"], m.get("line", ""), m.get("item", ""), m.get("qty"), m.get("t_created"),
                               now, ok, m.get("unit") or "EA", now + self.ack_delay))
        if not ok:
            return "rejected", REASON_NOT_RELEASED_TO_PLANT
        self.accepted += 1
        if self.ack_delay <= 0:
            self._acknowledge(m["txn_id"], now)
        return "applied", ""

    def ack_due(self, now: float) -> int:
        """Acknowledge every accepted order whose validation ended by ``now`` (one transaction); returns how many."""
        due = [r[0] for r in self.store.db.execute(
            "SELECT txn_id FROM mes_orders WHERE accepted AND t_acked IS NULL AND t_ack_due <= ? ORDER BY t_ack_due",
            (now,))]
        if due:
            with self.store.transaction():
                for txn_id in due:
                    self._acknowledge(txn_id, now)
        return len(due)

    def _acknowledge(self, txn_id: str, now: float) -> None:
        line, item, qty, unit = self.store.db.execute(
            "SELECT line, item, qty, unit FROM mes_orders WHERE txn_id=?", (txn_id,)).fetchone()
        ack = OutboxEvent(txn_id=f"{ACK_PREFIX}{txn_id}", correlation_id=txn_id, flow=ORDER_RELEASE,
                          plant=self.plant, line=line or "", item=item or "", lot=txn_id, qty=float(qty or 0.0),
                          unit=unit or "EA", schema_version=self.schema_version, t_created=now, source="MES",
                          target="ERP")
        self.store.insert(ack, now, PENDING)
        self.store.db.execute("UPDATE mes_orders SET t_acked=? WHERE txn_id=?", (now, txn_id))

    def master_data(self, m: dict, now: float) -> tuple[str, str]:
        """Apply master-data version ``m`` (its number in ``qty``; inside the caller's transaction)."""
        self.store.db.execute("INSERT OR IGNORE INTO mes_master_data VALUES (?,?,?,?)",
                              (m["txn_id"], int(m.get("qty") or 0), m.get("t_created"), now))
        return "applied", ""

    def version(self) -> int:
        """The newest master-data version applied (0: none yet)."""
        return int(self.store.db.execute("SELECT COALESCE(MAX(version), 0) FROM mes_master_data").fetchone()[0])

    def quality(self, m: dict, now: float) -> None:
        """Apply a quality hold or release ``m`` to its lot (inside the caller's transaction, once per ``txn_id``:
        the caller's inbox). A hold after the lot's release (a redelivered copy overtaken) changes nothing."""
        lot = m.get("lot") or ""
        self.store.db.execute("INSERT OR IGNORE INTO mes_lot_quality (lot) VALUES (?)", (lot,))
        if m["flow"] == QUALITY_HOLD:
            self.store.db.execute("UPDATE mes_lot_quality SET status=?, t_hold_at_mes=? "
                                  "WHERE lot=? AND t_release_at_mes IS NULL", (HELD, now, lot))
        else:
            self.store.db.execute("UPDATE mes_lot_quality SET status=?, t_release_at_mes=? WHERE lot=?",
                                  (RELEASED, now, lot))

    def lot_status(self, lot: str) -> str:
        """``held``, ``released``, or ``""`` when no quality message for ``lot`` reached the MES."""
        row = self.store.db.execute("SELECT status FROM mes_lot_quality WHERE lot=?", (lot,)).fetchone()
        return (row[0] or "") if row else ""
