"""Scenario load bursts at the live edge: drawn once per plant, stored once each, across restarts."""

from __future__ import annotations

import math

from kernel.trace import INVENTORY_MOVE, MATERIAL_ISSUE
from live.edge_aggregator import EdgeAggregator, EdgeConfig
from live.edge_bursts import plan_bursts
from scenarios.spec import Scenario


def scenario(**load) -> Scenario:
    """Bursts alone: no steady issues or moves (those: tests/live/test_edge_steady_flows.py)."""
    load = {"material_issues": 0, "inventory_moves": 0} | load
    return Scenario.model_validate({
        "name": "bursts",
        "run": {"seed": 5, "mode": "live"},
        "landscape": {
            "items": {"FG-100": {"unit": "EA"}, "FG-200": {"unit": "EA"}, "RM-10": {"unit": "KG"}},
            "plants": [{"id": "P01", "lines": 2, "products": ["FG-100", "FG-200"]},
                       {"id": "P02", "lines": 1, "component_unit": "LB"}],
        },
        "load": load,
    })


ISSUES = {"at": "10m", "duration": "5m", "flow": "material_issue", "rate": "3/s", "plants": ["P01"]}
MOVES = {"at": "1h", "duration": "10m", "flow": "inventory_move", "rate": "1/s"}


def test_a_burst_reaches_only_the_plants_it_names_inside_its_window():
    spec = scenario(bursts=[ISSUES, MOVES])
    p01, p02 = plan_bursts(spec, "P01"), plan_bursts(spec, "P02")
    assert [b.flow for b in p01] == [MATERIAL_ISSUE, INVENTORY_MOVE]
    assert [b.flow for b in p02] == [INVENTORY_MOVE]
    issues, moves = p01
    n = 3 * 300  # Poisson count: within five standard deviations
    assert abs(len(issues.times) - n) < 5 * math.sqrt(n)
    assert list(issues.times) == sorted(issues.times)
    assert issues.times[0] >= 600 and issues.times[-1] < 900
    assert moves.times[0] >= 3600 and moves.times[-1] < 4200
    # Issues consume the component, moves carry the line's product (as in the virtual engine).
    assert (issues.item, issues.unit) == ("RM-10", "KG") and (moves.item, moves.unit) == (None, "EA")
    assert plan_bursts(spec, "P02")[0].unit == "EA" and set(issues.lines) == {0, 1}
    assert all(5 <= q <= 50 for q in issues.qty) and all(1 <= q < 100 and q == int(q) for q in moves.qty)


def test_draws_are_the_same_for_a_restarted_edge_and_differ_between_plants():
    spec = scenario(bursts=[MOVES])
    assert plan_bursts(spec, "P01") == plan_bursts(spec, "P01")
    assert plan_bursts(spec, "P01")[0].times != plan_bursts(spec, "P02")[0].times


def config(spec: Scenario) -> EdgeConfig:
    return EdgeConfig.from_scenario(spec, "P01")


def test_the_edge_stores_each_arrival_once_when_due_within_the_outbox_room():
    cfg = config(scenario(bursts=[ISSUES]))
    times = cfg.bursts[0].times
    agg = EdgeAggregator(cfg)
    assert agg.collect(599.0) == []
    first = agg.collect(700.0, room=5)  # the outbox has room for five: the rest waits
    assert [e.t_created for e in first] == list(times[:5])
    rest = agg.collect(700.0)
    assert [e.t_created for e in rest] == [t for t in times[5:] if t <= 700.0]
    events = first + rest + agg.collect(10_000.0)
    assert len(events) == len(times) and agg.collect(20_000.0) == []
    assert len({e.txn_id for e in events}) == len(events) and events[0].txn_id == "P01-MI-000001"
    issue = events[0]
    assert (issue.flow, issue.item, issue.unit, issue.plant) == (MATERIAL_ISSUE, "RM-10", "KG", "P01")
    assert issue.line in ("Line01", "Line02") and issue.qty == cfg.bursts[0].qty[0]


def test_a_restarted_edge_resumes_after_the_arrivals_it_stored():
    cfg = config(scenario(bursts=[ISSUES]))
    agg = EdgeAggregator(cfg)
    before = agg.collect(750.0)
    restarted = EdgeAggregator(config(scenario(bursts=[ISSUES])), agg.state())
    after = restarted.collect(10_000.0)
    assert len(before) + len(after) == len(cfg.bursts[0].times)
    assert not {e.txn_id for e in before} & {e.txn_id for e in after}
    assert after[0].t_created > 750.0


def test_a_state_saved_before_bursts_existed_still_loads():
    cfg = config(scenario(bursts=[ISSUES]))
    old = EdgeAggregator(cfg).state()
    del old["burst_sent"]
    old["seq"] = {code: n for code, n in old["seq"].items() if code != "MI"}
    assert len(EdgeAggregator(cfg, old).collect(10_000.0)) == len(cfg.bursts[0].times)
