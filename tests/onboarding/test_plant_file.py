"""Plant files: unknown keys and bad values are errors naming their YAML path; a dump reads back."""

from __future__ import annotations

import pytest

from onboarding.plant_file import PlantFileError, dump_plant, load_plant, parse_plant
from onboarding.profile import load_profile
from tests.onboarding.plants import machine, plant


def test_dump_reads_back(tmp_path):
    original = plant()
    path = tmp_path / "plant.yaml"
    path.write_text(dump_plant(original, "now"))
    assert path.read_text().startswith("# Plant definition written by `synctwin discover`")
    assert load_plant(path) == original


def test_errors_name_the_path_of_each_problem(tmp_path):
    data = {"plant": {"id": "9bad"}, "endpoint": {"url": "http://x", "colour": 1},
            "machines": [machine("A", "X"), machine("A", "Y")]}
    with pytest.raises(PlantFileError) as err:
        parse_plant(data, "p.yaml")
    text = str(err.value)
    assert "plant.id" in text and "endpoint.url" in text and "endpoint.colour: unknown key" in text
    data["plant"]["id"], data["endpoint"] = "OK", {"url": "opc.tcp://h:4840"}
    with pytest.raises(PlantFileError, match="machines: .*repeated: A"):
        parse_plant(data)
    with pytest.raises(PlantFileError, match=r"machines\[0\].signals: .*unknown signal.*colour"):
        parse_plant({**data, "machines": [{"name": "A", "signals": {"colour": {"node": "i=1"}}}]})
    with pytest.raises(PlantFileError, match="file not found"):
        load_plant(tmp_path / "missing.yaml")


def test_unsupported_schema_version_is_readable_so_onboard_can_report_it():
    assert plant(schema_version="v3").schema_version == "v3"


def test_profile_maps_vendor_states_to_twin_states():
    profile = load_profile()
    assert profile.twin_state("Executing") == "running"
    assert profile.twin_state("Execute") == "running"
    assert profile.twin_state("OutOfService") == "down"
    assert profile.twin_state("Held") == "idle"
    assert profile.twin_state("Banana") is None


def test_onboard_exits_2_naming_the_field_of_an_unreadable_plant_file_or_an_unknown_wave(tmp_path):
    from typer.testing import CliRunner

    from synctwin.cli import app
    from tests.onboarding.plants import write_fleet

    path = tmp_path / "plant.yaml"
    path.write_text("plant: {id: LNZ}\nendpoint: {url: 'opc.tcp://h:1', colour: red}\nmachines: []\n")
    result = CliRunner().invoke(app, ["onboard", str(path)])
    assert result.exit_code == 2
    assert "endpoint.colour: unknown key" in result.output and "machines" in result.output
    path.write_text(dump_plant(plant()))
    result = CliRunner().invoke(app, ["onboard", str(path), "--into", str(write_fleet(tmp_path)), "--wave", "W7"])
    assert result.exit_code == 2 and "--wave: 'W7'" in result.output


def test_the_example_plant_file_is_readable():
    from pathlib import Path

    example = load_plant(Path(__file__).resolve().parents[2] / "scenarios" / "plants" / "example.yaml")
    assert example.plant.id == "MTY" and example.endpoint.publishing_interval == 0.5
    assert example.machines[0].signals["good"].unit == "PZA"
