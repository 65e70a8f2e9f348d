"""Scenario load bursts at a plant's edge in the live engine.

A burst (``load.bursts``) adds ``rate`` events per scenario second of one flow to the plants it
names, for ``duration`` from ``at``. The virtual engine draws them in the plant twin; here the edge
of each plant posts them through its outbox, so they meet the real gateway, broker, workers and ERP
twin on the way. Items, units and quantities follow the virtual engine: issues and backflushes
consume the scenario's component, confirmations and moves carry the line's product.

The arrivals are drawn once, up front, from a seed of the run and the plant, so a restarted edge
draws the same ones and resumes after those it already stored (a count in its saved state).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from kernel.trace import BACKFLUSH, MATERIAL_ISSUE
from live.plant_host import find_plant
from scenarios.generator import plant_seed
from scenarios.spec import Scenario
from twins.wms import poisson_times

# Keeps the burst draws apart from the plant's machine-bank stream of the same (seed, plant).
_STREAM = 0xB0B5


@dataclass(frozen=True)
class BurstArrivals:
    """The events one burst adds at one plant: times (sorted scenario seconds), lines and quantities.

    ``item`` is the consumed component for issues and backflushes, ``None`` for the line's product."""

    flow: str
    item: str | None
    unit: str
    times: tuple[float, ...]
    lines: tuple[int, ...]
    qty: tuple[float, ...]

    def due(self, now: float) -> int:
        """How many arrivals happened by scenario time ``now``."""
        return bisect_right(self.times, now)


def plan_bursts(scenario: Scenario, plant_id: str) -> tuple[BurstArrivals, ...]:
    """Every burst of the scenario that names ``plant_id``, with its arrivals drawn."""
    index, plant = find_plant(scenario, plant_id)
    load = scenario.load
    rng = np.random.default_rng(plant_seed(scenario, index, stream=_STREAM))
    plans = []
    for burst in load.bursts:
        if burst.plants != "all" and plant_id not in burst.plants:
            continue
        times = poisson_times(burst.rate, burst.at, burst.at + burst.duration, rng)
        lines = rng.integers(0, plant.lines, times.size)
        if burst.flow in (MATERIAL_ISSUE, BACKFLUSH):
            item, unit = load.backflush_item, plant.component_unit or load.backflush_unit
            qty = np.round(rng.uniform(5, 50, times.size), 1)
        else:
            item, unit = None, plant.unit
            qty = rng.integers(1, 100, times.size).astype(float)
        plans.append(BurstArrivals(burst.flow, item, unit, tuple(times.tolist()), tuple(lines.tolist()),
                                   tuple(qty.tolist())))
    return tuple(plans)
