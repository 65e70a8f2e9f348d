"""Run-folder collection from the services' real state files: edge outbox, deliveries, ERP ledger."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.parquet as pq

from integration.delivery_log import DeliveryLog
from kernel.trace import LEDGER_SCHEMA, LOTS_SCHEMA, TRACE_SCHEMA
from live.collect import collect_run, edges_lagging, live_run_record, pending_at_edges
from live.edge_store import EdgeStore, OutboxEvent
from live.erp_service import Ledger, Posting
from scenarios.loader import parse_scenario

SCENARIO = parse_scenario({"name": "collect-test", "landscape": {
    "items": {"FG-100": {"unit": "EA", "inspection": True}}, "plants": [{"id": "P01"}]}})


def outbox_event(txn: str, flow: str = "goods_receipt", lot: str = "L1") -> OutboxEvent:
    return OutboxEvent(txn, lot, flow, "P01", "L01", "FG-100", lot, 40.0, "EA", "v2", 100.0)


def test_collect_joins_edge_deliveries_and_ledger(tmp_path: Path):
    state = tmp_path / "state"
    edge = EdgeStore(state / "edge-P01.sqlite", capacity=100)
    edge.add([outbox_event("GR1"), outbox_event("GR2", lot="L2"), outbox_event("OC1", "operation_confirmation"),
              outbox_event("GR3", lot="L3")], t_edge=101.0)
    edge.mark_sent(["GR1", "GR2", "OC1"], t_sent=102.0)
    edge.close()
    assert pending_at_edges(state) == 1
    log = DeliveryLog(state / "deliveries.sqlite")
    common = dict(flow="goods_receipt", plant="P01", item="FG-100", qty=40.0, unit="EA", t_created=100.0)
    log.record(txn_id="GR1", t_broker=102.5, t_delivered=103.0, t_acked=103.1, attempts=1, outcome="delivered",
               reason="", target="legacy", lot="L1", **common)
    log.record(txn_id="GR1", t_broker=102.5, t_acked=140.0, attempts=0, outcome="duplicate_suppressed",
               reason="broker_redelivery", target="legacy", lot="L1", **common)
    log.record(txn_id="OC1", t_broker=102.6, t_acked=103.2, attempts=3, outcome="dead_lettered",
               reason="retries_exhausted", target="legacy", **{**common, "flow": "operation_confirmation"})
    log.close()
    ledger = Ledger(state / "erp-legacy.sqlite")
    ledger.post(Posting(txn_id="GR1", flow="goods_receipt", plant="P01", item="FG-100", qty=40.0, unit="EA",
                        t_created=100.0), "legacy", 103.0)
    ledger.close()

    counts = collect_run(tmp_path, SCENARIO, live_run_record(SCENARIO, run_id="r1", duration=3600.0))

    assert counts == {"trace": 5, "ledger": 1, "lots": 3, "source_records": 4}
    trace = pq.read_table(tmp_path / "trace.parquet")
    assert trace.schema.equals(TRACE_SCHEMA)
    rows = {(r["txn_id"], r["outcome"]): r for r in trace.to_pylist()}
    delivered = rows[("GR1", "delivered")]
    assert (delivered["t_created"], delivered["t_edge"], delivered["t_broker"], delivered["t_delivered"]) == (
        100.0, 101.0, 102.5, 103.0)
    assert delivered["target"] == "ERP-legacy" and delivered["lot"] == "L1"
    assert rows[("GR1", "duplicate_suppressed")]["reason"] == "broker_redelivery"
    assert rows[("OC1", "dead_lettered")]["attempts"] == 3
    assert rows[("GR2", "in_flight")]["reason"] == "not_yet_delivered"  # accepted, never delivered
    pending = rows[("GR3", "in_flight")]
    assert pending["reason"] == "pending_at_edge" and math.isnan(pending["t_broker"])
    assert pq.read_table(tmp_path / "ledger.parquet").schema.equals(LEDGER_SCHEMA)
    lots = pq.read_table(tmp_path / "lots.parquet")
    assert lots.schema.equals(LOTS_SCHEMA) and all(lots.column("requires_inspection").to_pylist())
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["engine"] == "live" and meta["duration"] == 3600.0 and meta["counts"]["trace"] == 5


def test_collect_of_an_empty_run_writes_empty_tables(tmp_path: Path):
    counts = collect_run(tmp_path, SCENARIO, live_run_record(SCENARIO, run_id="empty", duration=60.0))
    assert counts == {"trace": 0, "ledger": 0, "lots": 0, "source_records": 0}
    assert pq.read_table(tmp_path / "trace.parquet").num_rows == 0


def test_the_drain_sees_which_edges_have_not_stored_all_made_before_the_end(tmp_path: Path):
    state = tmp_path / "state"
    p01, p02 = EdgeStore(state / "edge-P01.sqlite", 100), EdgeStore(state / "edge-P02.sqlite", 100)
    assert edges_lagging(state, 500.0) == ["P01", "P02"]  # no mark yet: not known, so not drained
    p01.mark_drawn_through(500.0)
    p02.mark_drawn_through(499.0)  # an earlier end: it may still hold events made in [499, 500)
    assert edges_lagging(state, 500.0) == ["P02"]
    p02.mark_drawn_through(None)  # a restarted edge has not looked yet
    assert edges_lagging(state, 500.0) == ["P02"]
    p02.mark_drawn_through(500.0)
    assert edges_lagging(state, 500.0) == []
