"""A scenario's load bursts at one plant, drawn once from the run's seed: the same arrivals in both engines.

A burst (``load.bursts``) adds ``rate`` events per scenario second of one flow to the plants it names, for
``duration`` from ``at``. Its arrivals, lines and quantities are drawn up front from the plant's seed (a
stream of its own, independent of the machine bank), so the live edge (``live/edge_bursts.py``) and the
virtual plant (``virtual/plant.py``) carry the same events for the same seed, and every virtual replication
carries the burst the scenario scripts: a fidelity comparison then measures the layer, not two Poisson draws
(a burst of 800 events varies by about 3.5 % from one draw to the next). Items, units and quantities: issues
and backflushes consume the scenario's component, confirmations and moves carry the line's product.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from kernel.trace import BACKFLUSH, MATERIAL_ISSUE
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


def draw_bursts(scenario: Scenario, plant_index: int) -> tuple[BurstArrivals, ...]:
    """Every burst of the scenario that names the plant at ``plant_index`` (file order), with its arrivals."""
    plant = scenario.landscape.all_plants[plant_index]
    load = scenario.load
    rng = np.random.default_rng(plant_seed(scenario, plant_index, stream=_STREAM))
    plans = []
    for burst in load.bursts:
        if burst.plants != "all" and plant.id not in burst.plants:
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
