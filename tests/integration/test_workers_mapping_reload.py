"""Mapping changes reach a running worker: the watch sees the file change, builds the mappings with the new
code and confirms the version it applied; an unchanged file is not read again."""

from __future__ import annotations

import json
from pathlib import Path

from integration.mapping import Mapped, Unmappable
from integration.workers.mapping_reload import APPLIED_FILE, MappingWatch, build_mappings, write_mapping_fix
from scenarios.loader import load_scenario

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "chaos" / "scenarios" / "two-plants.yaml"


def test_a_mapping_fix_is_picked_up_confirmed_and_can_be_undone(tmp_path: Path):
    scenario = load_scenario(SCENARIO)
    watch = MappingWatch(tmp_path, scenario)
    assert watch.refresh() is None  # no changes written yet
    assert isinstance(build_mappings(scenario)["P01"].map_one("NO-SUCH-ITEM", 1, "EA"), Unmappable)
    write_mapping_fix(tmp_path, "P01", "NO-SUCH-ITEM", "FG-100")
    mappings = watch.refresh()
    assert mappings["P01"].map_one("NO-SUCH-ITEM", 2, "EA") == Mapped("FG-100", 2, "EA")
    assert isinstance(mappings["P02"].map_one("NO-SUCH-ITEM", 1, "EA"), Unmappable)  # only P01's code
    assert json.loads((tmp_path / "state" / APPLIED_FILE).read_text())["version"] == 1
    assert watch.refresh() is None  # unchanged file
    fixes = write_mapping_fix(tmp_path, "P01", "NO-SUCH-ITEM", None)
    assert fixes["version"] == 2
    assert isinstance(build_mappings(scenario, fixes)["P01"].map_one("NO-SUCH-ITEM", 1, "EA"), Unmappable)
