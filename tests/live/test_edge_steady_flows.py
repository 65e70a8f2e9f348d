"""The live edge's steady warehouse flows and backflushes: the virtual engine's arrivals, stored once each."""

from __future__ import annotations

import numpy as np
import pytest

from kernel.trace import BACKFLUSH, INVENTORY_MOVE, MATERIAL_ISSUE
from live.edge_aggregator import EdgeAggregator, EdgeConfig
from scenarios.spec import Scenario
from twins.mes import REPORT_JITTER
from twins.warehouse_arrivals import WarehouseArrivals

HOUR = 3600.0


def scenario() -> Scenario:
    return Scenario.model_validate({
        "name": "steady",
        "run": {"seed": 5, "mode": "live", "duration": "2h"},
        "landscape": {
            "items": {"FG-100": {"unit": "EA"}, "FG-200": {"unit": "EA"}, "RM-10": {"unit": "KG"}},
            "plants": [{"id": "P01", "lines": 2, "machines_per_line": 2, "products": ["FG-100", "FG-200"],
                        "component_unit": "LB"}],
        },
        "load": {"material_issues": "60/h", "inventory_moves": "90/h", "confirmation_interval": "5m",
                 "backflush_per_unit": 0.5},
    })


def steady(events):
    return [e for e in events if e.flow in (MATERIAL_ISSUE, INVENTORY_MOVE)]


def test_the_edge_stores_the_seeded_arrivals_once_each_across_a_restart_and_none_after_the_run():
    spec = scenario()
    cfg = EdgeConfig.from_scenario(spec, "P01")
    agg = EdgeAggregator(cfg)
    first = steady(agg.collect(1000.0, room=7))  # the outbox has room for seven: the rest waits
    assert len(first) == 7
    more = steady(agg.collect(1800.0))
    restarted = EdgeAggregator(EdgeConfig.from_scenario(spec, "P01"), agg.state())  # draws the same again
    rest = steady(restarted.collect(3 * HOUR)) + steady(restarted.collect(4 * HOUR))
    events = first + more + rest
    assert len({e.txn_id for e in events}) == len(events)
    issues, moves = WarehouseArrivals(spec, 0, replication=0).between(0, 2 * HOUR)  # a virtual run's replication 0
    for drawn in (issues, moves):
        mine = [e for e in events if e.flow == drawn.flow]
        assert [e.t_created for e in mine] == drawn.times.tolist() and len(mine) > 60
        assert [e.qty for e in mine] == drawn.qty.tolist()
        assert [e.line for e in mine] == [f"Line{li + 1:02d}" for li in drawn.lines.tolist()]
        assert {e.source for e in mine} == {"WMS"}
    assert {(e.item, e.unit) for e in events if e.flow == MATERIAL_ISSUE} == {("RM-10", "LB")}
    assert {(e.item, e.unit) for e in events if e.flow == INVENTORY_MOVE} == {("FG-100", "EA"), ("FG-200", "EA")}


def test_each_line_backflushes_its_good_output_per_interval_once():
    cfg = EdgeConfig.from_scenario(scenario(), "P01")
    agg = EdgeAggregator(cfg)
    agg.observe_counter(0, "good", 10, 20.0)  # line 1: machines 0 and 1
    agg.observe_counter(1, "good", 6, 100.0)
    agg.observe_counter(2, "good", 4, 250.0)  # line 2
    first = [e for e in agg.collect(300.0 + REPORT_JITTER) if e.flow == BACKFLUSH]
    assert sorted((e.line, e.qty) for e in first) == [("Line01", 8.0), ("Line02", 2.0)]  # 16 and 4 units x 0.5
    assert all(300.0 <= e.t_created < 300.0 + REPORT_JITTER for e in first)
    assert {(e.item, e.unit, e.source) for e in first} == {("RM-10", "LB", "MES")}
    agg.observe_counter(0, "good", 30, 400.0)
    restarted = EdgeAggregator(cfg, agg.state())
    again = [e for e in restarted.collect(600.0 + REPORT_JITTER) if e.flow == BACKFLUSH]
    assert [(e.line, e.qty, e.txn_id) for e in again] == [("Line01", 10.0, "P01-BF-000003")]
    assert 600.0 <= again[0].t_created < 600.0 + REPORT_JITTER
    assert [e for e in restarted.collect(2000.0) if e.flow == BACKFLUSH] == []


@pytest.mark.parametrize("room", [0, 1])
def test_a_backflush_waits_for_room_in_the_outbox(room):
    cfg = EdgeConfig.from_scenario(scenario(), "P01")
    agg = EdgeAggregator(cfg)
    agg.observe_counter(0, "good", 10, 20.0)
    agg.collect(300.0 + REPORT_JITTER, room=1)  # the confirmation takes the room
    later = agg.collect(301.0 + REPORT_JITTER, room=room)
    assert len([e for e in later if e.flow == BACKFLUSH]) == room
    assert np.isclose(sum(e.qty for e in agg.collect(400.0) + later if e.flow == BACKFLUSH), 5.0)


def test_drawn_through_says_how_far_a_full_outbox_held_the_plant_back():
    cfg = EdgeConfig.from_scenario(scenario(), "P01")
    agg = EdgeAggregator(cfg)
    agg.observe_counter(0, "good", 10, 20.0)
    held = agg.collect(1000.0, room=3)  # the confirmation, then two of the arrivals: the rest waits
    assert len(held) == 3
    first_waiting = agg.drawn_through(1000.0)
    assert first_waiting < 1000.0
    rest = agg.collect(1000.0)  # room again: everything due is drawn, the first of it the one that waited first
    assert min(e.t_created for e in rest) == first_waiting and len(rest) > 10
    assert agg.drawn_through(1000.0) == 1000.0
    agg.observe_counter(0, "good", 20, 1100.0)  # made, but its confirmation is due only at the next boundary
    assert agg.drawn_through(1150.0) == 1000.0  # the arrivals since 1000 are not drawn yet
    agg.collect(1150.0)
    assert agg.drawn_through(1150.0) == 1150.0 and agg.s.pend_good[0] == 10
