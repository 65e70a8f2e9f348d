"""Master data: every plant item maps to an ERP item, every unit converts to the ERP's, nothing is
ambiguous, and the mapping was checked against the current item master.

Items and units go through :class:`integration.mapping.PlantMapping`, the code the workers map with,
so a row that passes here is a record the workers will map.
"""

from __future__ import annotations

import difflib
import hashlib
import json

from integration.mapping import Mapped, PlantMapping
from onboarding.fleet import as_plant_spec
from onboarding.plant_file import PlantFile
from onboarding.verdict import FAIL, PASS, WARN, Row
from scenarios.spec import ItemSpec, Scenario

CHECK = "master data"
# Exact factors between common plant and ERP units: a mapping that disagrees is wrong, not ambiguous.
STANDARD = {("G", "KG"): 0.001, ("KG", "G"): 1000.0, ("MG", "G"): 0.001, ("G", "MG"): 1000.0, ("T", "KG"): 1000.0,
            ("KG", "T"): 0.001, ("LB", "KG"): 0.45359237, ("KG", "LB"): 1 / 0.45359237, ("L", "ML"): 1000.0,
            ("ML", "L"): 0.001, ("EA", "PC"): 1.0, ("PC", "EA"): 1.0, ("PCS", "EA"): 1.0, ("PZA", "EA"): 1.0,
            ("ST", "EA"): 1.0}


def master_version(items: dict[str, ItemSpec]) -> str:
    """A version of the ERP item master: a digest of every item code and unit (``md-`` + 10 hex)."""
    text = json.dumps({code: spec.unit for code, spec in sorted(items.items())}, sort_keys=True)
    return "md-" + hashlib.sha256(text.encode()).hexdigest()[:10]


def check_master_data(plant: PlantFile, fleet: Scenario) -> list[Row]:
    """One row per item, per unit conversion, per ambiguity, and one for the master-data version."""
    master = fleet.landscape.items
    rows = [_version_row(plant, master)]
    for m in plant.machines:
        if not m.product:
            rows.append(Row(CHECK, f"product of {m.name}", FAIL, f"machine {m.name} has no product code (no product "
                            "signal bound and none written)", f"set machines[{plant.machines.index(m)}].product to the "
                            "plant item code it makes"))
    mapping = PlantMapping.from_spec(as_plant_spec(plant, fleet), master)
    units_needed: dict[str, set[str]] = {}
    for code in plant.products():
        target = plant.master_data.items.get(code) or (code if code in master else "")
        if not target or target not in master:
            rows.append(_unmapped(code, target, master))
            continue
        units_needed.setdefault(plant.unit, set()).add(master[target].unit)
        result = mapping.map_one(code, 1.0, plant.unit)
        if isinstance(result, Mapped):
            rows.append(Row(CHECK, f"item {code}", PASS, f"{code} maps to ERP item {target} "
                            f"(1 {plant.unit} = {result.qty:g} {result.unit})"))
        else:
            rows.append(Row(CHECK, f"item {code}", PASS, f"{code} maps to ERP item {target}; its unit is checked "
                            "on the unit rows"))
        if code in master and target != code:
            rows.append(Row(CHECK, f"item {code} ambiguous", WARN, f"{code} is also an ERP item code but maps to "
                            f"{target}", f"confirm with master data that plant {code} is ERP {target}"))
    for local, targets in units_needed.items():
        rows += _unit_rows(plant, local, targets)
    lower = [u.upper() for u in plant.master_data.units]
    for dup in sorted({u for u in lower if lower.count(u) > 1}):
        rows.append(Row(CHECK, f"unit {dup} ambiguous", FAIL, f"master_data.units holds {dup} in more than one "
                        "spelling", "keep one entry per unit"))
    return rows


def _version_row(plant: PlantFile, master: dict[str, ItemSpec]) -> Row:
    current, given = master_version(master), plant.master_data.version
    if given == current:
        return Row(CHECK, "master-data version", PASS, f"mapping checked against the current item master {current}")
    evidence = (f"the plant file names no master-data version; the ERP item master is {current}" if not given
                else f"mapping checked against {given}; the ERP item master is now {current}")
    return Row(CHECK, "master-data version", FAIL, evidence, f"review master_data.items and units against the current "
               f"item master, then set master_data.version: {current}")


def _unmapped(code: str, target: str, master: dict[str, ItemSpec]) -> Row:
    close = difflib.get_close_matches(target or code, list(master), n=3, cutoff=0.3)
    known = ", ".join(close or sorted(master)[:5])
    evidence = (f"plant item {code} maps to {target!r}, which is not an ERP item" if target
                else f"plant item {code} has no mapping to an ERP item")
    return Row(CHECK, f"item {code}", FAIL, evidence, f"add `{code}: <ERP item>` under master_data.items "
               f"(ERP items like it: {known}) or have the item created in the ERP")


def _unit_rows(plant: PlantFile, local: str, targets: set[str]) -> list[Row]:
    if len(targets) > 1:
        both = ", ".join(sorted(targets))
        return [Row(CHECK, f"unit {local}", FAIL, f"the plant's unit {local} must convert to {both} for "
                    "different items; one plant unit converts to one ERP unit", "give the items one ERP unit or "
                    "report them in separate plant units")]
    target = next(iter(targets))
    if local == target:
        return [Row(CHECK, f"unit {local}", PASS, f"{local} is the ERP's unit")]
    conversion = plant.master_data.units.get(local)
    standard = STANDARD.get((local.upper(), target.upper()))
    factor = f"{standard:g}" if standard else f"<{target} per {local}>"
    suggestion = f"{{to: {target}, factor: {factor}}}"
    if conversion is None:
        return [Row(CHECK, f"unit {local}", FAIL, f"unit {local} has no conversion to the ERP's {target}",
                    f"add under master_data.units: {local}: {suggestion}")]
    if conversion.to != target:
        return [Row(CHECK, f"unit {local}", FAIL, f"unit {local} converts to {conversion.to}, but the ERP keeps "
                    f"these items in {target}", f"set master_data.units.{local}: {suggestion}")]
    if standard and abs(conversion.factor / standard - 1) > 1e-9:
        return [Row(CHECK, f"unit {local}", FAIL, f"factor {conversion.factor:g} for {local} -> {target}; "
                    f"1 {local} = {standard:g} {target}", f"set master_data.units.{local}.factor: {standard:g}")]
    note = "" if standard else " (not a standard conversion: confirm the factor with master data)"
    return [Row(CHECK, f"unit {local}", PASS if standard else WARN,
                f"1 {local} = {conversion.factor:g} {target}{note}",
                "" if standard else f"confirm 1 {local} = {conversion.factor:g} {target}")]
