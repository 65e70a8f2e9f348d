"""The fleet a plant joins: the plant becomes a scenario plant, optionally in a rollout wave."""

from __future__ import annotations

import pytest

from onboarding.fleet import fleet_scenario
from onboarding.verdict import FAIL, NOT_READY, PASS, READY, READY_WITH_WARNINGS, WARN, Result, Row
from scenarios.loader import ScenarioError
from tests.onboarding.plants import plant, write_fleet


def test_plant_joins_the_fleet_and_its_wave(tmp_path):
    fleet = fleet_scenario(write_fleet(tmp_path), plant(), "W2")
    new = next(p for p in fleet.combined.landscape.all_plants if p.id == "LNZ")
    assert new.products == ["CHOC-250", "CHOC-100"] and new.unit == "G" and new.mapping.units["G"].factor == 0.001
    assert new.lines == 1 and new.machines_per_line == 2 and new.cycle_time == 2.0
    assert fleet.combined.rollout.waves[1].plants == ["P02", "LNZ"]
    assert "LNZ" not in [p.id for p in fleet.base.landscape.all_plants]


def test_unknown_wave_and_taken_id_are_input_errors(tmp_path):
    path = write_fleet(tmp_path)
    with pytest.raises(ScenarioError, match="--wave: 'W9'.*W1, W2"):
        fleet_scenario(path, plant(), "W9")
    with pytest.raises(ScenarioError, match="plant.id: 'P01' is already a plant"):
        fleet_scenario(path, plant(plant={"id": "P01"}))


def test_verdict_from_rows():
    result = Result("LNZ", [Row("pilot", "lost", PASS, "0")])
    assert result.verdict == READY and result.ready
    result.rows.append(Row("connectivity", "no scrap", WARN, "..."))
    assert result.verdict == READY_WITH_WARNINGS and result.ready
    result.rows.append(Row("contract", "v3", FAIL, "..."))
    assert result.verdict == NOT_READY and not result.ready
    assert [r.verdict for r in result.ordered()] == [FAIL, WARN, PASS]
