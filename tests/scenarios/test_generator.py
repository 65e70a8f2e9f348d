"""The vectorised generator: fault windows, per-ERP/per-plant fault plans, routing, seeds."""

from __future__ import annotations

import numpy as np
import pytest

from scenarios.generator import FaultPlan, Vocabulary, Windows, seeds
from scenarios.loader import parse_scenario
from scenarios.spec import FaultSpec


def _fault(at: float, duration: float, kind: str = "erp_outage", **extra) -> FaultSpec:
    return FaultSpec(kind=kind, at=at, duration=duration, **extra)


def _scenario(plants: int = 3, **sections):
    data = {"name": "g", "landscape": {"plants": [{"id": "P", "count": plants}],
                                       "cloud_erp": {"kind": "cloud"}}}
    data.update(sections)
    return parse_scenario(data)


# ------------------------------------------------------------------------------------------ Windows
def test_empty_windows_contain_nothing():
    w = Windows.of([])
    t = np.array([0.0, 5.0, 1e9])
    assert w.index(t).tolist() == [-1, -1, -1]
    assert w.end_of(t).tolist() == t.tolist()
    assert w.value_at(t, 7.0).tolist() == [7.0, 7.0, 7.0]
    assert w.as_records() == []


def test_windows_are_half_open_and_sorted():
    w = Windows.of([_fault(100, 50), _fault(10, 5)])
    assert w.as_records() == [(10.0, 15.0), (100.0, 150.0)]
    t = np.array([9.99, 10.0, 14.99, 15.0, 99.0, 100.0, 149.0, 150.0])
    assert w.index(t).tolist() == [-1, 0, 0, -1, -1, 1, 1, -1]
    assert w.contains(t).tolist() == [False, True, True, False, False, True, True, False]


def test_overlapping_and_touching_windows_merge_and_keep_the_larger_value():
    w = Windows.of([_fault(0, 10, "erp_slow", factor=2), _fault(5, 20, "erp_slow", factor=8),
                    _fault(25, 5, "erp_slow", factor=3), _fault(40, 1, "erp_slow", factor=4)], "factor")
    assert w.as_records() == [(0.0, 30.0), (40.0, 41.0)]
    assert w.value.tolist() == [8.0, 4.0]


def test_nested_window_does_not_shorten_the_outer_one():
    w = Windows.of([_fault(0, 100), _fault(10, 5)])
    assert w.as_records() == [(0.0, 100.0)]


def test_end_of_moves_times_inside_a_window_to_its_end():
    w = Windows.of([_fault(10, 5), _fault(100, 50)])
    t = np.array([0.0, 12.0, 15.0, 120.0, 200.0])
    assert w.end_of(t).tolist() == [0.0, 15.0, 15.0, 150.0, 200.0]


def test_value_at_uses_the_window_value_inside_and_the_default_outside():
    w = Windows.of([_fault(10, 5, "broker_redelivery", rate=0.5)], "rate")
    assert w.value_at(np.array([5.0, 11.0, 16.0]), 0.1).tolist() == [0.1, 0.5, 0.1]


def test_index_accepts_scalars_and_matches_a_plain_loop():
    rng = np.random.default_rng(1)
    starts = np.sort(rng.uniform(0, 1000, 20))
    faults = [_fault(float(s), float(d)) for s, d in zip(starts, rng.uniform(1, 40, 20), strict=True)]
    w = Windows.of(faults)
    t = rng.uniform(-10, 1100, 2000)
    expected = [next((i for i, (s, e) in enumerate(w.as_records()) if s <= x < e), -1) for x in t]
    assert w.index(t).tolist() == expected
    assert int(w.index(w.start[0])) == 0


# ---------------------------------------------------------------------------------------- FaultPlan
def test_fault_plan_splits_erp_faults_by_kind_and_erp():
    scenario = _scenario(faults=[
        {"kind": "erp_outage", "at": "1h", "duration": "10m", "erp": "legacy"},
        {"kind": "erp_outage", "at": "3h", "duration": "5m", "erp": "all"},
        {"kind": "erp_slow", "at": "2h", "duration": "30m", "erp": "cloud", "factor": 4},
        {"kind": "broker_redelivery", "at": "5h", "duration": "1h", "rate": 0.25},
    ])
    plan = FaultPlan.of(scenario)
    assert plan.erp_outage["legacy"].as_records() == [(3600.0, 4200.0), (10800.0, 11100.0)]
    assert plan.erp_outage["cloud"].as_records() == [(10800.0, 11100.0)]
    assert plan.erp_slow["legacy"].as_records() == []
    assert plan.erp_slow["cloud"].as_records() == [(7200.0, 9000.0)]
    assert plan.erp_slow["cloud"].value.tolist() == [4.0]
    assert plan.redelivery.as_records() == [(18000.0, 21600.0)]
    assert plan.redelivery.value.tolist() == [0.25]
    assert all(w.as_records() == [] for w in plan.wan_outage.values())


def test_fault_plan_wan_outages_per_plant_include_gateway_down():
    scenario = _scenario(faults=[
        {"kind": "wan_outage", "at": "1h", "duration": "10m", "plants": ["P02"]},
        {"kind": "gateway_down", "at": "2h", "duration": "1m"},
    ])
    plan = FaultPlan.of(scenario)
    assert set(plan.wan_outage) == {"P01", "P02", "P03"}
    assert plan.wan_outage["P01"].as_records() == [(7200.0, 7260.0)]
    assert plan.wan_outage["P02"].as_records() == [(3600.0, 4200.0), (7200.0, 7260.0)]


# --------------------------------------------------------------------------------------- Vocabulary
def test_vocabulary_holds_every_code_once():
    data = {"name": "g", "landscape": {"plants": [{"id": "P", "products": ["LOC-1"], "unit": "PCS",
                                                   "mapping": {"items": {"LOC-1": "FG-100"},
                                                               "units": {"PCS": {"to": "EA"}}}}]}}
    vocab = Vocabulary.of(parse_scenario(data))
    assert len(set(vocab.items)) == len(vocab.items)
    assert {"FG-100", "RM-10", "LOC-1"} <= set(vocab.items)
    assert {"min", "EA", "KG", "PCS"} <= set(vocab.units)
    assert vocab.items[vocab.item("LOC-1")] == "LOC-1"
    assert vocab.units[vocab.unit("PCS")] == "PCS"


# -------------------------------------------------------------------------------------------- seeds
def _draws(seq: np.random.SeedSequence) -> list[float]:
    return np.random.default_rng(seq).random(4).tolist()


def test_seeds_are_reproducible():
    a, b = seeds(_scenario(), 2), seeds(_scenario(), 2)
    for (ent_a, plants_a), (ent_b, plants_b) in zip(a, b, strict=True):
        assert _draws(ent_a) == _draws(ent_b)
        assert [_draws(s) for s in plants_a] == [_draws(s) for s in plants_b]


def test_seeds_differ_between_replications_plants_and_run_seeds():
    (ent0, plants0), (ent1, plants1) = seeds(_scenario(), 2)
    streams = [_draws(s) for s in (ent0, ent1, *plants0, *plants1)]
    assert len({tuple(s) for s in streams}) == len(streams)
    other = seeds(_scenario(run={"seed": 43}), 1)[0]
    assert _draws(other[0]) != _draws(ent0)


def test_seeds_do_not_depend_on_plant_count_or_replication_count():
    few = seeds(_scenario(plants=2), 2)
    many = seeds(_scenario(plants=7), 5)
    for rep in range(2):
        assert _draws(few[rep][0]) == _draws(many[rep][0])
        assert [_draws(s) for s in few[rep][1]] == [_draws(s) for s in many[rep][1][:2]]
    assert len(many[4][1]) == 7


@pytest.mark.parametrize("replications", [1, 3])
def test_seeds_shape(replications):
    out = seeds(_scenario(plants=4), replications)
    assert len(out) == replications
    assert all(len(per_plant) == 4 for _, per_plant in out)
