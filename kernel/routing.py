"""Rollout routing: which ERP serves a plant at a scenario time. One implementation for both engines.

A plant posts to its home ERP (``PlantSpec.erp``) until the first rollout wave that names it starts;
from then on every wave that names it and has started moves it again, so the latest started wave
wins (a plant named in two waves follows the second from its start). Waves starting at the same
time apply in file order.

The timestamp that routes a transaction is its ``t_created``: a business event belongs to the ERP
that owned the plant when it happened, so every copy and every retry of one transaction posts to the
same ERP, whatever the outages, queues or redeliveries between source and target. The virtual hub
uses the array form (:meth:`Routing.codes`), the live workers the scalar form (:meth:`Routing.target`).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from scenarios.generator import ERP_KINDS
from scenarios.spec import Scenario


@dataclass(frozen=True)
class Routing:
    """Per plant, the times at which its ERP changes and the ERP kind from each of them on."""

    plants: tuple[str, ...]
    change_at: tuple[np.ndarray, ...]  # per plant: sorted times, the first is -inf (the home ERP)
    kind_code: tuple[np.ndarray, ...]  # per plant: index into ERP_KINDS from the matching time on

    @classmethod
    def of(cls, scenario: Scenario) -> Routing:
        """The routing of every plant of ``scenario``, in the scenario's plant order."""
        waves = sorted(enumerate(scenario.rollout.waves), key=lambda iw: (iw[1].at, iw[0]))
        plants = scenario.landscape.all_plants
        change_at, kind_code = [], []
        for plant in plants:
            steps = [(-np.inf, plant.erp)] + [(w.at, w.erp) for _, w in waves if plant.id in w.plants]
            change_at.append(np.array([t for t, _ in steps], dtype=float))
            kind_code.append(np.array([ERP_KINDS.index(k) for _, k in steps], dtype=np.int8))
        return cls(tuple(p.id for p in plants), tuple(change_at), tuple(kind_code))

    def target(self, plant: str, t_created: float) -> str | None:
        """The ERP kind serving ``plant`` at scenario time ``t_created``; None for a plant the scenario lacks."""
        steps = self._steps.get(plant)
        if steps is None:
            return None
        times, kinds = steps
        return kinds[bisect_right(times, t_created) - 1]

    @cached_property
    def _steps(self) -> dict[str, tuple[list[float], list[str]]]:
        """Per plant: its change times and ERP kinds as plain lists. The live workers route one event at a
        time, and a bisect on a list costs a fraction of the array form's per-call numpy work."""
        return {p: (times.tolist(), [ERP_KINDS[int(c)] for c in codes])
                for p, times, codes in zip(self.plants, self.change_at, self.kind_code, strict=True)}

    def codes(self, plant_index: np.ndarray, t_created: np.ndarray) -> np.ndarray:
        """Array form: the ERP code (index into ``ERP_KINDS``) per (plant index, time)."""
        plant_index = np.asarray(plant_index)
        t_created = np.asarray(t_created, dtype=float)
        out = np.empty(plant_index.shape, dtype=np.int8)
        for i in np.unique(plant_index):
            sel = plant_index == i
            step = np.searchsorted(self.change_at[i], t_created[sel], side="right") - 1
            out[sel] = self.kind_code[i][step]
        return out

    def plant_codes(self, plant_index: int, t_created: np.ndarray) -> np.ndarray:
        """Array form for one plant's times."""
        t_created = np.asarray(t_created, dtype=float)
        return self.codes(np.full(t_created.shape, plant_index), t_created)

    def kinds(self) -> set[str]:
        """Every ERP kind some plant routes to at some time."""
        return {ERP_KINDS[c] for codes in self.kind_code for c in codes}
