"""The fleet a new plant joins: a scenario (``--into``) plus the plant as one more of its plants.

The plant becomes a :class:`~scenarios.spec.PlantSpec` (lines, machines, cycle time, products, unit,
mapping, schema version) so the virtual engine, the workers and the mapping code all see it the way
they see every other plant. ``--wave`` puts it into one of the scenario's rollout waves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from onboarding.plant_file import PlantFile
from scenarios.loader import ScenarioError, load_scenario, parse_scenario
from scenarios.spec import MappingSpec, PlantSpec, Scenario, UnitMapping

DEFAULT_FLEET = Path(__file__).resolve().parent.parent / "scenarios" / "library" / "baseline.yaml"
SUPPORTED_SCHEMAS = ("v1", "v2")


@dataclass(frozen=True)
class Fleet:
    """The fleet as it is (``base``) and with the new plant (``combined``)."""

    source: str
    base: Scenario
    combined: Scenario
    wave: str | None = None


def as_plant_spec(plant: PlantFile, fleet: Scenario) -> PlantSpec:
    """The plant as a scenario plant; an unsupported schema version is modelled as v2 (its own row says so)."""
    lines = sorted({m.line for m in plant.machines}) or [""]
    per_line = math.ceil(len(plant.machines) / len(lines))
    cycles = [m.cycle_time for m in plant.machines if m.cycle_time]
    mapping = MappingSpec(items={k: v for k, v in plant.master_data.items.items() if v},
                          units={k: UnitMapping(to=u.to, factor=u.factor) for k, u in plant.master_data.units.items()})
    return PlantSpec(
        id=plant.plant.id, name=plant.plant.name or None, lines=len(lines), machines_per_line=per_line,
        cycle_time=sum(cycles) / len(cycles) if cycles else 60.0, products=plant.products() or ["UNKNOWN"],
        unit=plant.unit, mapping=mapping, erp=plant.erp,
        schema_version=plant.schema_version if plant.schema_version in SUPPORTED_SCHEMAS else "v2",
    )


def fleet_scenario(into: Path | None, plant: PlantFile, wave: str | None = None) -> Fleet:
    """The fleet of ``into`` (default the baseline scenario) with ``plant`` added (to ``wave`` if given).

    Raises :class:`ScenarioError` naming the problem: a plant id already in the fleet, an unknown wave.
    """
    path = into or DEFAULT_FLEET
    base = load_scenario(path)
    existing = [p.id for p in base.landscape.all_plants]
    if plant.plant.id in existing:
        raise ScenarioError(str(path), [f"plant.id: {plant.plant.id!r} is already a plant of this fleet "
                                        f"({', '.join(existing)}); give the new plant its own id"])
    data = base.model_dump(mode="json")
    data["landscape"]["plants"].append(as_plant_spec(plant, base).model_dump(mode="json"))
    if wave is not None:
        names = [w["name"] for w in data["rollout"]["waves"]]
        if wave not in names:
            known = ", ".join(names) or "none: the scenario has no rollout waves"
            raise ScenarioError(str(path), [f"--wave: {wave!r} is not a wave of this scenario (waves: {known})"])
        data["rollout"]["waves"][names.index(wave)]["plants"].append(plant.plant.id)
    data["name"] = f"{base.name}-with-{plant.plant.id}"
    return Fleet(str(path), base, parse_scenario(data, f"{path} + {plant.plant.id}"), wave)
