"""Load plans from the scenario's load section, the pace of the Locust users, and stage verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loadtest.plan import (
    PlanError,
    build_plan,
    pace,
    plan_duration,
    rate_at,
    scenario_rate,
    shape_tick,
    users_for,
)
from loadtest.verdict import knee, stage_figures
from scenarios.loader import load_scenario

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios" / "library"


def test_shift_change_uses_the_scenarios_factor_and_scaled_burst_length():
    spec = load_scenario(LIBRARY / "shift-change-burst.yaml")  # factor 6, 20 min burst
    plan = build_plan(spec, "shift-change", 100.0, 120.0, speed=60.0)
    assert [s.rate for s in plan] == [100.0, 600.0, 100.0]
    assert plan[1].duration == pytest.approx(20.0)  # 20 min at speed 60
    assert plan_duration(plan) == pytest.approx(120.0)


def test_bursts_add_the_scenarios_extra_rate_for_its_plants_while_they_last():
    spec = load_scenario(LIBRARY / "shift-change-burst.yaml")  # 25/s per plant, 3 plants, at 4h for 20m
    plan = build_plan(spec, "bursts", 50.0, 600.0, speed=60.0)  # 4 h at speed 60 = 240 s
    assert rate_at(plan, 100.0) == 50.0
    assert rate_at(plan, 250.0) == pytest.approx(50.0 + 25 * 3 * 60)
    assert rate_at(plan, 270.0) == 50.0
    with pytest.raises(PlanError, match="--shape bursts"):
        build_plan(spec, "bursts", 50.0, 100.0, speed=60.0)  # the burst starts after the load ends


def test_step_ramp_and_spike_and_bad_shapes():
    spec = load_scenario(LIBRARY / "live-smoke.yaml")
    ramp = build_plan(spec, "step-ramp", 1000.0, 40.0, speed=1.0, steps=4, max_rate=4000.0)
    assert [s.rate for s in ramp] == [1000.0, 2000.0, 3000.0, 4000.0]
    assert rate_at(ramp, 40.0) is None
    peak = build_plan(spec, "spike", 100.0, 60.0, speed=1.0)
    assert max(s.rate for s in peak) == 500.0 and plan_duration(peak) == pytest.approx(60.0)
    with pytest.raises(PlanError, match="--shape"):
        build_plan(spec, "sawtooth", 1.0, 10.0, speed=1.0)
    with pytest.raises(PlanError, match="--max-rate"):
        build_plan(spec, "step-ramp", 1000.0, 10.0, speed=1.0, max_rate=10.0)


def test_scenario_rate_counts_every_machines_confirmations():
    spec = load_scenario(LIBRARY / "live-smoke.yaml")  # 2 plants x 6 machines every 5 min, plus issues etc.
    assert 12 / 300 < scenario_rate(spec) < 12 / 300 + 0.05


def test_pace_gives_each_stage_its_rate_in_whole_users():
    batch, rps = pace([2000.0, 4000.0, 6000.0, 20000.0], 200, None)
    per_user = batch * rps
    for rate in (2000.0, 4000.0, 6000.0, 20000.0):
        assert users_for(rate, per_user) * per_user == pytest.approx(rate)
    batch, rps = pace([3.0], 200, None)  # a small rate posts small batches
    assert batch == 3 and rps == pytest.approx(1.0)


def test_shape_ticks_users_per_stage_and_stops_after_the_plan():
    # loadtest.shapes.PlanShape.tick is this function (Locust itself is never imported in the test process:
    # it monkey-patches the standard library)
    spec = load_scenario(LIBRARY / "live-smoke.yaml")
    plan = build_plan(spec, "step-ramp", 100.0, 20.0, 1.0, steps=2, max_rate=200.0)
    assert shape_tick(plan, 50.0, 1.0)[0] == 2
    assert shape_tick(plan, 50.0, 15.0)[0] == 4
    assert shape_tick(plan, 50.0, 25.0) is None


def _stage(rate, latencies, backlog_end, requests=100, failures=0, cpu=None):
    rows = [{"t": 1.0, "backlog": 0.0, **(cpu or {})}, {"t": 2.0, "backlog": float(backlog_end), **(cpu or {})}]
    return stage_figures(f"{rate:g}/s", rate, (0.0, 10.0), np.asarray(latencies, dtype=float), rows, requests,
                         failures, 100, sla_p99=1.0, max_error_share=0.01, have_chain=True)


def test_a_stage_breaks_on_p99_backlog_errors_or_an_unsustained_rate():
    ok = _stage(100.0, [0.1] * 1000, 0)
    assert ok["holds"] and ok["delivered_events_per_s"] == 100.0
    assert "p99" in _stage(100.0, [0.1] * 900 + [2.0] * 100, 0)["reasons"][0]
    assert "backlog" in _stage(100.0, [0.1] * 1000, 5000)["reasons"][0]
    assert "failed" in _stage(100.0, [0.1] * 1000, 0, failures=5)["reasons"][0]
    assert "delivered" in _stage(100.0, [0.1] * 500, 0)["reasons"][0]


def test_knee_is_the_highest_holding_stage_and_names_the_busiest_process():
    cpu_low = {"cpu_gateway": 0.3, "cpu_worker": 0.5, "cpu_machine": 1.2, "cpu_load generator": 0.9}
    cpu_high = {"cpu_gateway": 0.5, "cpu_worker": 0.9, "cpu_machine": 2.0, "cpu_load generator": 1.5}
    stages = [_stage(100.0, [0.1] * 1000, 0, cpu=cpu_low), _stage(200.0, [0.2] * 2000, 0, cpu=cpu_low),
              _stage(300.0, [3.0] * 2000, 9000, cpu=cpu_high)]
    result = knee(stages, cores=2)
    assert result["found"] and result["knee_events_per_s"] == 200.0
    assert result["breached_at_events_per_s"] == 300.0
    assert result["limiting_component"] == "worker"  # not the load generator, not the machine total
    assert "100%" in result["limiting_note"]
    assert not knee([stages[2]], cores=2)["found"]
