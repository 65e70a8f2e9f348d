"""Plant codes and units to the canonical model, one record or a whole array at a time.

A record whose item or unit has no mapping is never dropped: the caller dead-letters it with the
reason returned here, so the onboarding team sees exactly which code is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernel.trace import REASON_UNKNOWN_UNIT, REASON_UNMAPPED_ITEM
from scenarios.spec import ItemSpec, PlantSpec


@dataclass(frozen=True)
class Mapped:
    item: str
    qty: float
    unit: str


@dataclass(frozen=True)
class Unmappable:
    reason: str
    detail: str


@dataclass(frozen=True)
class PlantMapping:
    """One plant's view of ERP master data."""

    plant: str
    items: dict[str, str]
    units: dict[str, tuple[str, float]]
    master: dict[str, ItemSpec]

    @classmethod
    def from_spec(cls, plant: PlantSpec, master: dict[str, ItemSpec]) -> PlantMapping:
        """Mapping of ``plant``: its explicit codes; canonical codes and units map to themselves."""
        items = {code: code for code in master} | dict(plant.mapping.items)
        units = {spec.unit: (spec.unit, 1.0) for spec in master.values()}
        units |= {local: (m.to, m.factor) for local, m in plant.mapping.units.items()}
        return cls(plant.id, items, units, master)

    def map_one(self, item: str, qty: float, unit: str) -> Mapped | Unmappable:
        """Canonical item, quantity and unit, or why the record cannot be mapped."""
        canonical = self.items.get(item)
        if canonical is None or canonical not in self.master:
            return Unmappable(REASON_UNMAPPED_ITEM, f"plant {self.plant}: item {item!r} has no mapping")
        target_unit = self.master[canonical].unit
        conversion = self.units.get(unit)
        if conversion is None or conversion[0] != target_unit:
            detail = f"plant {self.plant}: unit {unit!r} does not convert to {target_unit}"
            return Unmappable(REASON_UNKNOWN_UNIT, detail)
        return Mapped(canonical, qty * conversion[1], target_unit)

    def map_codes(self, local_items: list[str], unit: str) -> tuple[list[str], np.ndarray, list[str]]:
        """Vector form over a plant's product list: canonical code, factor (NaN if unmappable), reason."""
        codes, factors, reasons = [], np.full(len(local_items), np.nan), []
        for i, local in enumerate(local_items):
            result = self.map_one(local, 1.0, unit)
            if isinstance(result, Mapped):
                codes.append(result.item)
                factors[i] = result.qty
                reasons.append("")
            else:
                codes.append(local)
                reasons.append(result.reason)
        return codes, factors, reasons
