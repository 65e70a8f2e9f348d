"""Capacity with the plant added to a rollout wave: the rollout's own SLA evaluation, rerun with it."""

from __future__ import annotations

import json

import pytest

from onboarding.checks.capacity import check_capacity
from onboarding.fleet import fleet_scenario
from tests.onboarding.plants import plant, write_fleet

pytestmark = pytest.mark.slow


def test_plant_in_a_wave_gets_fleet_wave_erp_and_rate_limit_rows_with_intervals(tmp_path):
    fleet = fleet_scenario(write_fleet(tmp_path), plant(), "W1")
    rows, figures = check_capacity(fleet, "LNZ", tmp_path / "capacity", replications=2, duration=1800.0)
    by_name = {r.name: r for r in rows}
    assert by_name["fleet SLAs with the plant"].verdict == "pass", by_name["fleet SLAs with the plant"]
    wave = by_name["wave W1 with LNZ"]
    assert wave.verdict == "pass" and "(P01, LNZ)" in wave.evidence and "erp-cloud" in wave.evidence
    for name in ("erp-legacy headroom", "erp-cloud headroom", "erp-cloud rate-limit headroom"):
        assert by_name[name].verdict == "pass" and "[" in by_name[name].evidence, by_name.get(name)
    sla = json.loads((tmp_path / "capacity" / "with-plant" / "sla.json").read_text())
    assert [w["plants"] for w in sla["per_wave"] if w["wave"] == "W1"] == [["P01", "LNZ"]]
    assert "LNZ" in {p["plant"] for p in sla["per_plant"]} and figures["replications"] == 2
