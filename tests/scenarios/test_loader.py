"""Scenario files: valid ones load with defaults filled in, bad ones explain the path and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scenarios.loader import ScenarioError, dump_scenario, load_scenario, parse_scenario, set_dotted

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios" / "library"


def _minimal(**sections) -> dict:
    data = {"name": "t", "landscape": {"plants": [{"id": "P"}]}}
    data.update(sections)
    return data


def _problems(data) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "file.yaml")
    assert str(info.value).startswith("file.yaml: invalid scenario")
    return info.value.problems


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_minimal_scenario_gets_documented_defaults():
    scenario = parse_scenario(_minimal())
    assert scenario.run.duration == 86400.0
    assert scenario.run.seed == 42
    assert scenario.landscape.erp.kind == "legacy"
    assert scenario.landscape.integration.idempotency is True
    assert [p.id for p in scenario.landscape.all_plants] == ["P"]
    assert scenario.landscape.plants[0].cycle_time == 60.0


def test_unknown_key_names_its_yaml_path():
    data = _minimal()
    data["landscape"]["plants"][0]["cycle_tme"] = "45s"
    assert _problems(data) == ["landscape.plants[0].cycle_tme: unknown key (remove it or check its spelling)"]


def test_unknown_top_level_section_is_an_error():
    problems = _problems(_minimal(faultz=[]))
    assert problems == ["faultz: unknown key (remove it or check its spelling)"]


def test_wrong_literal_lists_the_allowed_values():
    data = _minimal()
    data["landscape"]["erp"] = {"kind": "sap"}
    (problem,) = _problems(data)
    assert problem.startswith("landscape.erp.kind: 'sap' is not allowed")
    assert "'legacy'" in problem and "'cloud'" in problem


def test_wrong_overflow_policy_lists_all_three():
    data = _minimal()
    data["landscape"]["plants"][0]["edge"] = {"overflow": "spill"}
    (problem,) = _problems(data)
    assert problem.startswith("landscape.plants[0].edge.overflow: 'spill' is not allowed")
    for allowed in ("'block'", "'drop_oldest'", "'drop_newest'"):
        assert allowed in problem


def test_bad_duration_names_the_path_and_the_value():
    data = _minimal()
    data["landscape"]["plants"][0]["cycle_time"] = "fast"
    (problem,) = _problems(data)
    assert problem.startswith("landscape.plants[0].cycle_time:")
    assert "'fast'" in problem
    assert "45m" in problem


def test_bad_rate_names_the_path_and_the_value():
    data = _minimal(load={"orders": "many"})
    (problem,) = _problems(data)
    assert problem.startswith("load.orders:")
    assert "'many'" in problem and "50/s" in problem


def test_every_problem_is_listed_not_just_the_first():
    data = _minimal(run={"seed": -1, "replications": 0})
    data["landscape"]["plants"][0]["scrap_rate"] = 2
    problems = _problems(data)
    paths = sorted(p.split(":")[0] for p in problems)
    assert paths == ["landscape.plants[0].scrap_rate", "run.replications", "run.seed"]


def test_missing_required_name():
    data = _minimal()
    del data["name"]
    assert _problems(data) == ["name: required but missing"]


def test_top_level_must_be_a_mapping():
    assert _problems([1, 2]) == ["(top level): expected a mapping with name, landscape, ... sections"]


def test_unknown_plant_in_a_fault_names_the_fault_and_the_known_plants():
    data = _minimal(faults=[{"kind": "erp_outage", "at": "1h", "duration": "5m", "plants": ["Q"]}])
    (problem,) = _problems(data)
    assert "faults[0].plants: unknown plant 'Q'" in problem
    assert "known plants: P" in problem


def test_unknown_plant_in_a_burst_and_a_wave():
    data = _minimal(
        load={"bursts": [{"at": "1h", "duration": "1m", "rate": "5/s", "plants": ["X"]}]},
        rollout={"waves": [{"name": "w1", "at": "2h", "plants": ["Y"], "erp": "legacy"}]},
    )
    (problem,) = _problems(data)
    assert "load.bursts[0].plants: unknown plant 'X'" in problem
    assert "rollout.waves[0].plants: unknown plant 'Y'" in problem


def test_wave_to_cloud_needs_a_cloud_erp():
    data = _minimal(rollout={"waves": [{"name": "w1", "at": "2h", "plants": ["P"]}]})
    (problem,) = _problems(data)
    assert "rollout.waves[0].erp: 'cloud' needs landscape.cloud_erp to be set" in problem
    data["landscape"]["cloud_erp"] = {"kind": "cloud", "rate_limit": "20/s"}
    assert parse_scenario(data).rollout.waves[0].erp == "cloud"


def test_windowed_fault_without_duration_says_how_to_fix_it():
    (problem,) = _problems(_minimal(faults=[{"kind": "erp_outage", "at": "1h"}]))
    assert problem.startswith("faults[0]:")
    assert "needs a duration > 0" in problem and "duration: 30m" in problem


def test_process_kill_needs_a_target():
    (problem,) = _problems(_minimal(faults=[{"kind": "process_kill", "at": "1h"}]))
    assert "needs a target" in problem


def test_templated_group_expands_to_numbered_ids():
    data = {"name": "t", "landscape": {"plants": [{"id": "P", "count": 12, "lines": 3}, {"id": "Solo"}]}}
    scenario = parse_scenario(data)
    plants = scenario.landscape.all_plants
    assert [p.id for p in plants] == [f"P{i:02d}" for i in range(1, 13)] + ["Solo"]
    assert all(p.lines == 3 and p.count is None for p in plants[:12])


def test_large_group_widens_the_number():
    scenario = parse_scenario({"name": "t", "landscape": {"plants": [{"id": "S", "count": 100}]}})
    ids = [p.id for p in scenario.landscape.all_plants]
    assert ids[0] == "S001" and ids[-1] == "S100" and len(ids) == 100


def test_expanded_ids_are_usable_in_faults():
    data = {"name": "t", "landscape": {"plants": [{"id": "P", "count": 3}]},
            "faults": [{"kind": "wan_outage", "at": "1h", "duration": "10m", "plants": ["P02"]}]}
    assert parse_scenario(data).faults[0].plants == ["P02"]


def test_group_colliding_with_a_single_plant_is_refused():
    data = {"name": "t", "landscape": {"plants": [{"id": "P", "count": 2}, {"id": "P01"}]}}
    (problem,) = _problems(data)
    assert "plant ids must be unique; repeated: P01" in problem


def test_library_scenario_loads(tmp_path):
    scenario = load_scenario(LIBRARY / "erp-outage.yaml")
    assert scenario.name == "erp-outage"
    assert [p.id for p in scenario.landscape.all_plants] == ["P01", "P02", "P03"]
    assert scenario.run.duration == 12 * 3600
    assert scenario.faults[0].at == 4 * 3600 and scenario.faults[0].duration == 45 * 60


def test_overrides_replace_and_create_nested_keys(tmp_path):
    path = _write(tmp_path, _minimal(run={"seed": 1}))
    scenario = load_scenario(path, {"run.seed": 9, "run.duration": "2h",
                                    "landscape.integration.retry.max_attempts": 3})
    assert scenario.run.seed == 9
    assert scenario.run.duration == 7200.0
    assert scenario.landscape.integration.retry.max_attempts == 3


def test_bad_override_is_reported_like_a_bad_file(tmp_path):
    path = _write(tmp_path, _minimal())
    with pytest.raises(ScenarioError) as info:
        load_scenario(path, {"run.sede": 3})
    assert info.value.problems == ["run.sede: unknown key (remove it or check its spelling)"]
    assert info.value.source == str(path)


def test_missing_file_and_broken_yaml(tmp_path):
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(broken)


def test_set_dotted_creates_parents():
    data: dict = {"a": {"x": 1}}
    set_dotted(data, "a.b.c", 5)
    set_dotted(data, "top", 2)
    assert data == {"a": {"x": 1, "b": {"c": 5}}, "top": 2}


def test_dump_round_trips(tmp_path):
    scenario = load_scenario(LIBRARY / "erp-outage.yaml")
    path = tmp_path / "again.yaml"
    path.write_text(dump_scenario(scenario))
    assert load_scenario(path) == scenario
