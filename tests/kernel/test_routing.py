"""Rollout routing: one implementation, and both engines route every (plant, time) alike."""

from __future__ import annotations

import numpy as np
import yaml

from kernel.routing import Routing
from scenarios.generator import ERP_KINDS, FaultPlan, Vocabulary
from scenarios.loader import parse_scenario
from virtual import batch as B
from virtual.hub import IntegrationHub

TWO_WAVES = """
name: routing
run: {duration: 4h, seed: 3}
landscape:
  cloud_erp: {}
  plants:
    - {id: P01, erp: legacy}
    - {id: P02, erp: legacy}
    - {id: P03, erp: cloud}
rollout:
  waves:
    - {name: W1, at: 1h, plants: [P02], erp: cloud}
    - {name: W2, at: 2h, plants: [P02, P03], erp: legacy}
    - {name: W3, at: 3h, plants: [P02], erp: cloud}
"""


def scenario():
    return parse_scenario(yaml.safe_load(TWO_WAVES))


def test_a_plant_in_several_waves_follows_the_latest_started_wave():
    routing = Routing.of(scenario())
    assert [routing.target("P02", t) for t in (0, 3599, 3600, 7199, 7200, 10799, 10800)] == [
        "legacy", "legacy", "cloud", "cloud", "legacy", "legacy", "cloud"]
    assert routing.target("P01", 1e9) == "legacy"
    assert [routing.target("P03", t) for t in (0, 7199, 7200)] == ["cloud", "cloud", "legacy"]
    assert routing.target("P99", 0) is None
    assert routing.kinds() == {"legacy", "cloud"}


def test_scalar_and_array_forms_agree_everywhere():
    routing = Routing.of(scenario())
    rng = np.random.default_rng(1)
    plants = rng.integers(0, 3, 2000)
    times = np.concatenate([rng.uniform(0, 4 * 3600, 1994), [3600, 7200, 10800, 3599.999, 0, -1]])
    codes = routing.codes(plants, times)
    expected = [ERP_KINDS.index(routing.target(routing.plants[p], t)) for p, t in zip(plants, times, strict=True)]
    assert codes.tolist() == expected


def test_the_virtual_hub_routes_on_t_created_as_the_live_workers_do():
    spec = scenario()
    hub = IntegrationHub(spec, Vocabulary.of(spec), FaultPlan.of(spec), np.random.default_rng(0))
    routing = Routing.of(spec)
    n = 600
    rng = np.random.default_rng(2)
    rows = B.empty(B.ALL_COLUMNS)
    rows = {k: np.zeros(n, dtype=v.dtype) for k, v in rows.items()}
    rows["plant"] = rng.integers(0, 3, n).astype(rows["plant"].dtype)
    rows["t_created"] = rng.uniform(0, 4 * 3600, n)
    rows["t_broker"] = rows["t_created"] + 1800.0  # stored long after creation: must not change the route
    live = [ERP_KINDS.index(routing.target(spec.landscape.all_plants[p].id, t))
            for p, t in zip(rows["plant"], rows["t_created"], strict=True)]
    assert hub._route(rows).tolist() == live


def test_waves_in_file_order_apply_by_time_and_plants_outside_every_wave_stay_home():
    spec = parse_scenario({"name": "g", "landscape": {"cloud_erp": {}, "plants": [
        {"id": "P01"}, {"id": "P02"}, {"id": "C", "erp": "cloud"}]}, "rollout": {"waves": [
            {"name": "late", "at": "5h", "plants": ["P01"], "erp": "legacy"},
            {"name": "early", "at": "2h", "plants": ["P01", "P02"], "erp": "cloud"}]}})
    routing = Routing.of(spec)
    assert routing.plant_codes(0, np.array([0.0, 7199.9, 7200.0, 17999.0, 18000.0])).tolist() == [0, 0, 1, 1, 0]
    assert routing.plant_codes(1, np.array([7199.9, 7200.0, 9e9])).tolist() == [0, 1, 1]
    assert routing.plant_codes(2, np.array([0.0, 1e12])).tolist() == [1, 1]
