"""Mapping changes for running workers: extra plant codes read from ``RUN_DIR/state/mappings.json``.

An onboarding team that finds a missing code in the dead-letter queue fixes the mapping without stopping
the layer: it writes the file (``write_mapping_fix``), every worker re-reads it when its modification time
changes (about every sixth of the ack wait, on the heartbeat) and maps later messages with it, and
confirms the version it applied in ``mappings.applied.json``. Replaying the dead letters then delivers
them. Layout: ``{"version": n, "plants": {"P01": {"items": {"LOCAL-CODE": "CANONICAL"}}}}``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from integration.mapping import PlantMapping
from kernel.files import FileChange, write_text_atomic
from scenarios.spec import Scenario

MAPPINGS_FILE = "mappings.json"
APPLIED_FILE = "mappings.applied.json"


def mapping_file(run_dir: Path) -> Path:
    """Where the run's mapping changes are written."""
    return Path(run_dir) / "state" / MAPPINGS_FILE


def read_fixes(run_dir: Path) -> dict[str, Any]:
    """The current mapping changes (an empty version 0 when there are none)."""
    path = mapping_file(run_dir)
    if not path.is_file():
        return {"version": 0, "plants": {}}
    return json.loads(path.read_text())


def write_mapping_fix(run_dir: Path, plant: str, item: str, to: str | None) -> dict[str, Any]:
    """Map ``plant``'s code ``item`` to the canonical ``to`` (None removes the change); atomic, and the
    version goes up by one, so a worker confirms which change it applied."""
    fixes = read_fixes(run_dir)
    items = fixes["plants"].setdefault(plant, {}).setdefault("items", {})
    if to is None:
        items.pop(item, None)
    else:
        items[item] = to
    fixes["version"] = int(fixes.get("version", 0)) + 1
    write_text_atomic(mapping_file(run_dir), json.dumps(fixes, indent=1))
    return fixes


def build_mappings(scenario: Scenario, fixes: dict[str, Any] | None = None) -> dict[str, PlantMapping]:
    """Every plant's mapping from the scenario, with the codes of ``fixes`` added."""
    master = scenario.landscape.items
    out = {}
    for plant in scenario.landscape.all_plants:
        mapping = PlantMapping.from_spec(plant, master)
        extra = ((fixes or {}).get("plants", {}).get(plant.id) or {}).get("items") or {}
        if extra:
            mapping = PlantMapping(mapping.plant, {**mapping.items, **extra}, mapping.units, mapping.master)
        out[plant.id] = mapping
    return out


class MappingWatch:
    """Re-reads the mapping changes when the file changed; ``refresh()`` returns new mappings or None."""

    def __init__(self, run_dir: Path, scenario: Scenario):
        self.run_dir, self.scenario = Path(run_dir), scenario
        self.path = mapping_file(run_dir)
        self.version = 0
        self._file = FileChange(self.path)

    def refresh(self) -> dict[str, PlantMapping] | None:
        """New mappings when the file changed since the last call (and confirm the version), else None."""
        if not self._file.changed() or not self.path.exists():
            return None
        try:
            fixes = read_fixes(self.run_dir)
            mappings = build_mappings(self.scenario, fixes)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            print(f"worker: ignoring {self.path} ({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)
            return None
        self.version = int(fixes.get("version", 0))
        write_text_atomic(self.path.with_name(APPLIED_FILE), json.dumps({"version": self.version, "pid": os.getpid()}))
        return mappings
