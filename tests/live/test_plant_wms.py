"""The plant's live WMS and MES on the edge store: held lots are refused, released lots ship, every
enterprise message is applied once, orders are acknowledged back through the outbox."""

from __future__ import annotations

from pathlib import Path

from kernel.trace import GOODS_RECEIPT, MASTER_DATA, ORDER_RELEASE, QUALITY_HOLD, QUALITY_RELEASE, SHIPMENT
from live.edge_store import EdgeStore, OutboxEvent
from live.plant_wms import PlantWms, WmsConfig


def _wms(tmp_path: Path, gate: bool = True, mes_ack: float = 0.0) -> PlantWms:
    store = EdgeStore(tmp_path / "edge-P01.sqlite", 1000)
    config = WmsConfig("P01", "v2", ship_delay=0.0, quality_gate=gate, duration=3600.0,
                       inspected_items=frozenset({"FG-100"}), orderable_items=frozenset({"FG-100"}), mes_ack=mes_ack)
    return PlantWms(config, store)


def _receipt(lot: str, item: str = "FG-100", t: float = 100.0) -> OutboxEvent:
    return OutboxEvent(f"GR-{lot}", lot, GOODS_RECEIPT, "P01", "Line01", item, lot, 40.0, "EA", "v2", t)


def _shipments(wms: PlantWms) -> list[dict]:
    return [r for r in wms.store.rows() if r["flow"] == SHIPMENT]


def test_a_held_lot_is_refused_once_and_ships_after_its_release(tmp_path: Path):
    wms = _wms(tmp_path, gate=False)
    wms.putaway([_receipt("L1"), _receipt("L2", item="FG-200")])
    wms.apply([{"txn_id": "QH-L1", "flow": QUALITY_HOLD, "lot": "L1", "t_created": 90.0}], now=95.0)
    assert wms.ship_due(now=120.0) == (1, 1)  # L2 ships; L1 is refused
    assert wms.ship_due(now=130.0) == (0, 0)  # refused once, not on every tick
    refused = [r for r in _shipments(wms) if r["status"] == "rejected"]
    assert [(r["lot"], r["reason"]) for r in refused] == [("L1", "lot_on_quality_hold")]
    wms.apply([{"txn_id": "QR-L1", "flow": QUALITY_RELEASE, "lot": "L1", "t_created": 140.0}], now=150.0)
    assert wms.ship_due(now=160.0) == (1, 0)
    lot = {r["lot"]: r for r in wms.lots()}["L1"]
    assert lot["t_hold_at_wms"] == 95.0 and lot["t_release_at_wms"] == 150.0 and lot["t_shipped"] == 160.0


def test_with_the_quality_gate_an_inspected_lot_waits_for_its_release(tmp_path: Path):
    wms = _wms(tmp_path, gate=True)
    wms.putaway([_receipt("L1")])
    assert wms.ship_due(now=500.0) == (0, 0)
    wms.apply([{"txn_id": "QR-L1", "flow": QUALITY_RELEASE, "lot": "L1", "t_created": 510.0}], now=515.0)
    assert wms.ship_due(now=520.0) == (1, 0)


def test_each_message_is_applied_once_and_a_late_hold_does_not_block_a_released_lot(tmp_path: Path):
    wms = _wms(tmp_path, gate=False)
    wms.putaway([_receipt("L1")])
    release = {"txn_id": "QR-L1", "flow": QUALITY_RELEASE, "lot": "L1", "t_created": 140.0}
    hold = {"txn_id": "QH-L1", "flow": QUALITY_HOLD, "lot": "L1", "t_created": 90.0}
    assert [a["status"] for a in wms.apply([release], now=150.0)] == ["applied"]
    again = wms.apply([release, hold], now=170.0)  # a redelivered release, then a hold that was overtaken
    assert [a["status"] for a in again] == ["duplicate", "applied"] and again[0]["t_received"] == 150.0
    assert wms.ship_due(now=180.0) == (1, 0)


def test_orders_are_acknowledged_back_after_validation_and_unknown_items_rejected(tmp_path: Path):
    wms = _wms(tmp_path, mes_ack=2.0)
    order = {"txn_id": "OR-P01-00001", "flow": ORDER_RELEASE, "lot": "OR-P01-00001", "item": "FG-100",
             "line": "Line01", "qty": 40.0, "unit": "EA", "t_created": 10.0}
    unknown = {**order, "txn_id": "OR-P01-00002", "lot": "OR-P01-00002", "item": "FG-999"}
    master = {"txn_id": "MD-P01-v0001", "flow": MASTER_DATA, "lot": "v1", "qty": 1.0, "t_created": 5.0}
    answers = wms.apply([order, unknown, master], now=12.0)
    assert [(a["status"], a["reason"]) for a in answers] == [
        ("applied", ""), ("rejected", "order_item_not_released_to_plant"), ("applied", "")]
    # The acknowledgement leaves once the MES's 2 s of validation have passed, not before.
    assert wms.mes.ack_due(now=13.9) == 0 and not [r for r in wms.store.rows() if r["txn_id"].startswith("ACK-")]
    assert wms.mes.ack_due(now=14.0) == 1
    acks = [r for r in wms.store.rows() if r["txn_id"].startswith("ACK-")]
    assert [(r["txn_id"], r["flow"], r["status"], r["t_created"]) for r in acks] == [
        ("ACK-OR-P01-00001", ORDER_RELEASE, "pending", 14.0)]
    assert wms.mes.ack_due(now=20.0) == 0  # acknowledged once
    assert wms.mes.version() == 1


def test_quality_messages_reach_the_mes_once_and_a_late_hold_does_not_hold_a_released_lot(tmp_path: Path):
    wms = _wms(tmp_path, gate=False)
    hold = {"txn_id": "QH-L1", "flow": QUALITY_HOLD, "lot": "L1", "t_created": 90.0}
    release = {"txn_id": "QR-L1", "flow": QUALITY_RELEASE, "lot": "L1", "t_created": 140.0}
    assert wms.mes.lot_status("L1") == ""
    wms.apply([hold], now=95.0)
    assert wms.mes.lot_status("L1") == "held"
    wms.apply([hold, release], now=150.0)  # the hold again (a duplicate: applied once), then the release
    assert wms.mes.lot_status("L1") == "released"
    early = {"txn_id": "QR-L2", "flow": QUALITY_RELEASE, "lot": "L2", "t_created": 100.0}
    answers = wms.apply([early, {**hold, "txn_id": "QH-L2", "lot": "L2"}], now=160.0)  # the hold overtaken
    assert [a["status"] for a in answers] == ["applied", "applied"]
    rows = {r[0]: r[1:] for r in wms.db.execute("SELECT * FROM mes_lot_quality")}
    assert rows == {"L1": ("released", 95.0, 150.0), "L2": ("released", None, 160.0)}
    assert wms.mes.lot_status("L2") == "released"
