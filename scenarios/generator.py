"""Turn a scenario into arrays: fault windows, vocabularies and seeds (rollout routing: :mod:`kernel.routing`).

Everything random downstream draws from generators spawned here from
``numpy.random.SeedSequence(run.seed)``, one per (replication, plant) and one per replication for
the enterprise side, so a run is reproducible whatever the number of actors hosting it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scenarios.spec import FaultSpec, Scenario

ERP_KINDS = ("legacy", "cloud")


@dataclass(frozen=True)
class Windows:
    """Sorted, non-overlapping [start, end) windows with a vectorised membership test."""

    start: np.ndarray = field(default_factory=lambda: np.empty(0))
    end: np.ndarray = field(default_factory=lambda: np.empty(0))
    value: np.ndarray = field(default_factory=lambda: np.empty(0))  # e.g. slow factor, redelivery rate

    @classmethod
    def of(cls, faults: list[FaultSpec], value_attr: str | None = None) -> Windows:
        """Windows of ``faults``, merged where they overlap (the larger value wins)."""
        spans = sorted((f.at, f.at + f.duration, getattr(f, value_attr) if value_attr else 1.0) for f in faults)
        merged: list[list[float]] = []
        for s, e, v in spans:
            if merged and s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
                merged[-1][2] = max(merged[-1][2], v)
            else:
                merged.append([s, e, v])
        arr = np.array(merged, dtype=float).reshape(-1, 3)
        return cls(arr[:, 0].copy(), arr[:, 1].copy(), arr[:, 2].copy())

    def index(self, t: np.ndarray) -> np.ndarray:
        """Index of the window containing each time, or -1."""
        t = np.asarray(t, dtype=float)
        if self.start.size == 0:
            return np.full(t.shape, -1, dtype=np.int64)
        i = np.searchsorted(self.start, t, side="right") - 1
        inside = (i >= 0) & (t < self.end[np.clip(i, 0, None)])
        return np.where(inside, i, -1)

    def contains(self, t: np.ndarray) -> np.ndarray:
        return self.index(t) >= 0

    def end_of(self, t: np.ndarray) -> np.ndarray:
        """For times inside a window, that window's end; elsewhere the time itself."""
        t = np.asarray(t, dtype=float)
        i = self.index(t)
        return np.where(i >= 0, self.end[np.clip(i, 0, None)] if self.end.size else t, t)

    def value_at(self, t: np.ndarray, default: float) -> np.ndarray:
        i = self.index(t)
        return np.where(i >= 0, self.value[np.clip(i, 0, None)] if self.value.size else default, default)

    def as_records(self) -> list[tuple[float, float]]:
        return [(float(s), float(e)) for s, e in zip(self.start, self.end, strict=True)]


def _applies_to_erp(fault: FaultSpec, kind: str) -> bool:
    return fault.erp in ("all", kind)


def _applies_to_plant(fault: FaultSpec, plant: str) -> bool:
    return fault.plants == "all" or plant in fault.plants


@dataclass(frozen=True)
class FaultPlan:
    """Every timed fault of a scenario as windows, ready for vectorised checks."""

    erp_outage: dict[str, Windows]
    erp_slow: dict[str, Windows]
    wan_outage: dict[str, Windows]
    redelivery: Windows

    @classmethod
    def of(cls, scenario: Scenario) -> FaultPlan:
        faults = scenario.faults
        plants = [p.id for p in scenario.landscape.all_plants]
        by = lambda kind: [f for f in faults if f.kind == kind]  # noqa: E731
        return cls(
            erp_outage={k: Windows.of([f for f in by("erp_outage") if _applies_to_erp(f, k)]) for k in ERP_KINDS},
            erp_slow={k: Windows.of([f for f in by("erp_slow") if _applies_to_erp(f, k)], "factor") for k in ERP_KINDS},
            wan_outage={
                p: Windows.of([f for f in by("wan_outage") + by("gateway_down") if _applies_to_plant(f, p)])
                for p in plants
            },
            redelivery=Windows.of(by("broker_redelivery"), "rate"),
        )


@dataclass(frozen=True)
class Vocabulary:
    """Global string tables so batches carry small integer codes instead of text."""

    items: tuple[str, ...]
    units: tuple[str, ...]

    @classmethod
    def of(cls, scenario: Scenario) -> Vocabulary:
        items: dict[str, None] = {}
        units: dict[str, None] = {"min": None}  # downtime durations
        load = scenario.load
        for code, spec in scenario.landscape.items.items():
            items[code] = None
            units[spec.unit] = None
        items[load.backflush_item] = None
        units[load.backflush_unit] = None
        for plant in scenario.landscape.all_plants:
            for code in plant.products:
                items[code] = None
            units[plant.unit] = None
            if plant.component_unit:
                units[plant.component_unit] = None
            for local, m in plant.mapping.units.items():
                units[local] = None
                units[m.to] = None
            for local, canonical in plant.mapping.items.items():
                items[local] = None
                items[canonical] = None
        return cls(tuple(items), tuple(units))

    def item(self, code: str) -> int:
        return self.items.index(code)

    def unit(self, code: str) -> int:
        return self.units.index(code)


def plant_seed(scenario: Scenario, plant_index: int, replication: int = 0,
               stream: int | None = None) -> np.random.SeedSequence:
    """The seed of the plant at ``plant_index`` (file order) in ``replication``, the same in both engines:
    the virtual plant twin and the live plant host draw their machine bank from it. A ``stream`` gives an
    independent sibling for other draws of the same plant (the live edge's load bursts)."""
    # = SeedSequence(seed).spawn(replication + 1)[replication].spawn(plant_index + 2)[plant_index + 1]
    key = (replication, 1 + plant_index) + (() if stream is None else (stream,))
    return np.random.SeedSequence(scenario.run.seed, spawn_key=key)


def seeds(scenario: Scenario, replications: int) -> list[tuple[np.random.SeedSequence, list[np.random.SeedSequence]]]:
    """Per replication: (enterprise seed, one seed per plant in file order: :func:`plant_seed`)."""
    plants = len(scenario.landscape.all_plants)
    return [(np.random.SeedSequence(scenario.run.seed, spawn_key=(rep, 0)),
             [plant_seed(scenario, i, rep) for i in range(plants)]) for rep in range(replications)]
