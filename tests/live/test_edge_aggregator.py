"""The edge's sans-IO aggregator and its SQLite outbox: events from counters, state, overflow policies."""

from __future__ import annotations

import dataclasses

import pytest

from kernel.trace import DOWNTIME, GOODS_RECEIPT, OPERATION_CONFIRMATION, REASON_EDGE_OVERFLOW, SCRAP
from live.edge_aggregator import EdgeAggregator, EdgeConfig
from live.edge_poster import payload
from live.edge_store import EdgeStore, OutboxEvent
from scenarios.spec import Scenario

CONFIG = EdgeConfig(
    plant="P01",
    lines=2,
    machines_per_line=2,
    products=("FG-100", "FG-200"),
    unit="EA",
    schema_version="v1",
    confirmation_interval=300.0,
    telemetry_interval=60.0,
    lot_size=100,
)


def by_flow(events, flow):
    return [e for e in events if e.flow == flow]


def test_counter_deltas_become_one_confirmation_per_machine_per_interval():
    agg = EdgeAggregator(CONFIG)
    agg.observe_counter(0, "good", 40, 10.0)
    agg.observe_counter(0, "good", 70, 100.0)
    agg.observe_counter(0, "scrap", 2, 100.0)
    agg.observe_counter(3, "good", 5, 200.0)
    assert agg.collect(299.0) == []  # interval not over yet
    events = agg.collect(301.0)
    oc = by_flow(events, OPERATION_CONFIRMATION)
    assert [(e.line, e.item, e.qty, e.t_created) for e in oc] == [
        ("Line01", "FG-100", 70.0, 300.0),
        ("Line02", "FG-200", 5.0, 300.0),  # line 2 makes the second product (round robin)
    ]
    assert [(e.qty, e.unit) for e in by_flow(events, SCRAP)] == [(2.0, "EA")]
    assert [e.txn_id for e in oc] == ["P01-OC-000001", "P01-OC-000002"]
    assert by_flow(events, SCRAP)[0].txn_id == "P01-SC-000001"
    assert all(e.schema_version == "v1" and e.plant == "P01" for e in events)
    # nothing new produced: the next interval confirms nothing
    assert agg.collect(601.0) == []
    agg.observe_counter(0, "good", 75, 650.0)
    assert [e.qty for e in agg.collect(901.0)] == [5.0]


def test_lots_complete_per_line_every_lot_size_good_units():
    agg = EdgeAggregator(CONFIG)
    agg.observe_counter(0, "good", 60, 10.0)
    agg.observe_counter(1, "good", 60, 20.0)  # line 1 reaches 120: one lot, 20 carried
    agg.observe_counter(1, "good", 150, 30.0)  # +90 -> 210: second lot
    agg.observe_counter(2, "good", 99, 30.0)  # line 2: not yet
    gr = by_flow(agg.collect(40.0), GOODS_RECEIPT)
    assert [(e.lot, e.txn_id, e.qty, e.t_created, e.correlation_id) for e in gr] == [
        ("P01-L01-000001", "P01-GR-000001", 100.0, 20.0, "P01-L01-000001"),
        ("P01-L01-000002", "P01-GR-000002", 100.0, 30.0, "P01-L01-000002"),
    ]
    agg.observe_counter(2, "good", 100, 50.0)
    assert [e.lot for e in by_flow(agg.collect(60.0), GOODS_RECEIPT)] == ["P01-L02-000001"]


def test_a_counter_reset_counts_from_zero_and_nothing_is_lost():
    agg = EdgeAggregator(CONFIG)
    agg.observe_counter(0, "good", 50, 10.0)
    agg.observe_counter(0, "good", 8, 20.0)  # PLC reset (or restart) then 8 more
    assert [e.qty for e in by_flow(agg.collect(300.0), OPERATION_CONFIRMATION)] == [58.0]


def test_state_round_trip_continues_sequences_and_counters():
    agg = EdgeAggregator(CONFIG)
    agg.observe_counter(0, "good", 50, 10.0)
    agg.collect(300.0)
    agg.observe_counter(0, "good", 80, 310.0)  # seen but not yet confirmed when the edge dies
    saved = agg.state()
    again = EdgeAggregator(CONFIG, saved)
    events = again.collect(600.0)
    assert [(e.txn_id, e.qty) for e in events] == [("P01-OC-000002", 30.0)]


def test_room_limits_output_and_the_rest_waits_in_the_counters():
    agg = EdgeAggregator(CONFIG)
    for m in range(4):
        agg.observe_counter(m, "good", 10 * (m + 1), 10.0)
    first = agg.collect(300.0, room=2)
    assert [e.qty for e in first] == [10.0, 20.0]
    agg.observe_counter(2, "good", 45, 350.0)  # keeps counting while blocked
    rest = agg.collect(360.0, room=10)
    assert [e.qty for e in rest] == [45.0, 40.0]
    assert sum(e.qty for e in first + rest) == 10 + 20 + 45 + 40


def test_downtime_becomes_an_event_with_its_duration():
    agg = EdgeAggregator(CONFIG)
    agg.observe_downtime(3, 100.0, 700.0)
    (ev,) = agg.collect(120.0)
    assert (ev.flow, ev.txn_id, ev.line, ev.item, ev.qty, ev.unit, ev.t_created, ev.target) == (
        DOWNTIME,
        "P01-DT-000001",
        "Line02",
        "Line02-M02",
        600.0,
        "s",
        100.0,
        "MAINTENANCE",
    )


def test_telemetry_is_aggregated_per_line_and_interval():
    agg = EdgeAggregator(CONFIG)
    for t in (5.0, 30.0):
        agg.observe_signal(0, "temperature", 60.0 + t / 5)
        agg.observe_signal(0, "speed", 1.0)
        agg.observe_signal(0, "state", "running")
        agg.sample(t)
    assert agg.telemetry_due(59.0) == []
    (row,) = agg.telemetry_due(61.0)
    assert row["line"] == "Line01" and row["samples"] == 2 and row["t_start"] == 0.0 and row["t_end"] == 60.0
    assert row["temperature_mean"] == pytest.approx(63.5) and row["temperature_max"] == pytest.approx(66.0)
    assert row["running_share"] == 1.0


def test_config_from_scenario_reads_plant_and_load():
    scenario = Scenario.model_validate(
        {
            "name": "t",
            "landscape": {
                "plants": [
                    {
                        "id": "P",
                        "count": 2,
                        "lines": 3,
                        "products": ["A", "B"],
                        "unit": "KG",
                        "schema_version": "v2",
                        "edge": {"buffer": 7, "overflow": "drop_oldest"},
                    }
                ]
            },
            "load": {"lot_size": 50, "confirmation_interval": "2m"},
        }
    )
    cfg = EdgeConfig.from_scenario(scenario, "P02")
    assert (cfg.plant, cfg.lines, cfg.unit, cfg.schema_version, cfg.lot_size) == ("P02", 3, "KG", "v2", 50)
    assert (cfg.buffer, cfg.overflow, cfg.confirmation_interval) == (7, "drop_oldest", 120.0)
    assert [cfg.item_of_line(i) for i in range(3)] == ["A", "B", "A"]
    with pytest.raises(ValueError, match="P01, P02"):
        EdgeConfig.from_scenario(scenario, "X")


def test_payloads_follow_the_plant_schema_version():
    from integration.canonical import PayloadV1, PayloadV2

    row = dict(
        txn_id="P01-GR-000001",
        correlation_id="P01-L01-000001",
        flow="goods_receipt",
        plant="P01",
        line="Line01",
        item="FG-100",
        lot="P01-L01-000001",
        qty=100.0,
        unit="EA",
        schema_version="v1",
        t_created=12.5,
        source="MES",
        target="ERP",
    )
    v1 = PayloadV1.model_validate(payload(row))
    assert (v1.id, v1.material, v1.quantity, v1.uom, v1.lot, v1.timestamp) == (
        "P01-GR-000001",
        "FG-100",
        100.0,
        "EA",
        "P01-L01-000001",
        12.5,
    )
    v2 = PayloadV2.model_validate(payload({**row, "schema_version": "v2"}))
    assert (v2.txn_id, v2.correlation_id, v2.item, v2.qty) == ("P01-GR-000001", "P01-L01-000001", "FG-100", 100.0)


# --------------------------------------------------------------------------------------------- store
def events(n: int, start: int = 1) -> list[OutboxEvent]:
    return [
        OutboxEvent(
            f"P01-OC-{i:06d}",
            f"P01-OC-{i:06d}",
            OPERATION_CONFIRMATION,
            "P01",
            "Line01",
            "FG-100",
            "",
            1.0,
            "EA",
            "v1",
            float(i),
        )
        for i in range(start, start + n)
    ]


def test_store_keeps_events_and_state_across_reopen(tmp_path):
    store = EdgeStore(tmp_path / "edge.sqlite", capacity=100)
    store.add(events(3), t_edge=5.0, state={"seq": 3})
    store.add(events(1, start=3), t_edge=6.0)  # a replayed txn id is not stored twice
    store.mark_sent(["P01-OC-000001"], t_sent=7.0)
    store.close()
    again = EdgeStore(tmp_path / "edge.sqlite", capacity=100)
    assert again.load_state() == {"seq": 3}
    assert again.counts() == {"pending": 2, "sent": 1, "rejected": 0}
    assert [r["txn_id"] for r in again.next_batch(10)] == ["P01-OC-000002", "P01-OC-000003"]
    assert again.rows()[0]["t_sent"] == 7.0 and again.rows()[0]["t_edge"] == 5.0
    assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_block_reports_the_room_left(tmp_path):
    store = EdgeStore(tmp_path / "edge.sqlite", capacity=5, overflow="block")
    assert store.room() == 5
    store.add(events(3), t_edge=1.0)
    assert store.room() == 2
    store.mark_sent(["P01-OC-000001"], 2.0)
    assert store.room() == 3


def test_drop_oldest_rejects_the_oldest_pending_with_the_overflow_reason(tmp_path):
    store = EdgeStore(tmp_path / "edge.sqlite", capacity=3, overflow="drop_oldest")
    assert store.room() is None
    assert store.add(events(5), t_edge=1.0) == 2
    rows = {r["txn_id"]: r for r in store.rows()}
    assert [t for t, r in rows.items() if r["status"] == "rejected"] == ["P01-OC-000001", "P01-OC-000002"]
    assert {r["reason"] for r in rows.values() if r["status"] == "rejected"} == {REASON_EDGE_OVERFLOW}
    assert store.pending_count() == 3


def test_drop_newest_stores_the_overflow_as_rejected(tmp_path):
    store = EdgeStore(tmp_path / "edge.sqlite", capacity=3, overflow="drop_newest")
    assert store.add(events(5), t_edge=1.0) == 2
    statuses = [(r["txn_id"][-1], r["status"], r["reason"]) for r in store.rows()]
    assert statuses[3:] == [("4", "rejected", REASON_EDGE_OVERFLOW), ("5", "rejected", REASON_EDGE_OVERFLOW)]
    assert store.pending_count() == 3


def test_bad_overflow_settings_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="block, drop_oldest, drop_newest"):
        EdgeStore(tmp_path / "e.sqlite", capacity=3, overflow="drop_all")
    with pytest.raises(ValueError, match="plant.edge.buffer"):
        EdgeStore(tmp_path / "e.sqlite", capacity=0)


def test_config_replace_keeps_other_fields():
    assert dataclasses.replace(CONFIG, buffer=5).lot_size == 100


def test_machines_confirm_spread_over_the_mes_report_jitter_after_the_boundary():
    """As the virtual MES reports them (twins.mes): each machine at the boundary plus its own offset in
    [0, report_jitter), so a plant's machines do not all confirm in the same instant."""
    agg = EdgeAggregator(dataclasses.replace(CONFIG, report_jitter=5.0))
    for m in range(4):
        agg.observe_counter(m, "good", 10, 10.0)
    assert agg.collect(299.0) == []
    times = []
    for now in (300.0, 301.0, 302.0, 303.0, 304.0, 305.0):
        times += [e.t_created for e in agg.collect(now)]
        assert all(t <= now for t in times)
    assert len(times) == 4 and all(300.0 <= t < 305.0 for t in times)
    assert len(set(times)) == 4  # four machines, four instants
    again = EdgeAggregator(dataclasses.replace(CONFIG, report_jitter=5.0))  # the same offsets in another edge process
    for m in range(4):
        again.observe_counter(m, "good", 10, 10.0)
    assert sorted(e.t_created for e in again.collect(305.0)) == sorted(times)
