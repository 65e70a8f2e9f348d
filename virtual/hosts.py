"""Plain classes that host plant twins and hubs; :mod:`virtual.coordinator` runs them as Ray actors.

A plant host owns some plants for every replication (one SimPy environment and one seeded RNG per
(replication, plant)), so results do not depend on how plants are spread over actors. A hub host
owns the integration hub of some replications.
"""

from __future__ import annotations

import numpy as np
import simpy

from scenarios.generator import FaultPlan, Vocabulary, plant_seed, seeds
from scenarios.spec import Scenario
from virtual import batch as B
from virtual.hub import IntegrationHub
from virtual.plant import PlantTwin, PlantWindow

WindowResult = dict[tuple[int, int], PlantWindow]  # (replication, plant index) -> window


class PlantHost:
    """Steps a fixed set of plants through time windows for all replications."""

    def __init__(self, scenario: Scenario, plant_indices: list[int], replications: int):
        vocab = Vocabulary.of(scenario)
        faults = FaultPlan.of(scenario)
        plants = scenario.landscape.all_plants
        self.twins: dict[tuple[int, int], PlantTwin] = {}
        for rep in range(replications):
            for i in plant_indices:
                env = simpy.Environment()
                rng = np.random.default_rng(plant_seed(scenario, i, rep))
                self.twins[(rep, i)] = PlantTwin(env, scenario, plants[i], i, vocab, faults, rng, rep)

    def step(self, t_to: float) -> WindowResult:
        """Advance every hosted plant to ``t_to``."""
        return {key: twin.step(t_to) for key, twin in self.twins.items()}


class HubHost:
    """Runs the integration hub of each hosted replication over the plants' windows."""

    def __init__(self, scenario: Scenario, replications: list[int], total_replications: int):
        vocab = Vocabulary.of(scenario)
        faults = FaultPlan.of(scenario)
        all_seeds = seeds(scenario, total_replications)
        self.hubs = {r: IntegrationHub(scenario, vocab, faults, np.random.default_rng(all_seeds[r][0]))
                     for r in replications}

    def step(self, t_to: float, *plant_results: WindowResult) -> tuple[B.Batch, list[dict]]:
        """One window: (finished trace rows, closed lots) of the hosted replications."""
        rows, lots = [], []
        merged: dict[tuple[int, int], PlantWindow] = {}
        for result in plant_results:
            merged.update(result)
        for rep, hub in self.hubs.items():
            windows = sorted((p, w) for (r, p), w in merged.items() if r == rep)
            finished = hub.step(t_to, [(p, w.outbound) for p, w in windows])
            rows += [B.with_results(finished, replication=rep)]
            rows += [B.with_results(w.local, replication=rep) for _, w in windows]
            lots += [w.lots | {"plant": np.full(len(w.lots["lot"]), p), "replication": np.full(len(w.lots["lot"]), rep)}
                     for p, w in windows if w.lots]
        return B.concat(rows), lots

    def finish(self) -> tuple[B.Batch, list[dict]]:
        """Drain the hubs after the last window (same shape as :meth:`step`; no lots close here)."""
        return B.concat([B.with_results(hub.finish(), replication=rep) for rep, hub in self.hubs.items()]), []

    def breaker_log(self) -> list[dict]:
        return [entry | {"replication": rep} for rep, hub in self.hubs.items() for entry in hub.breaker_log()]
