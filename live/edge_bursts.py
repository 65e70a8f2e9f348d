"""Scenario load bursts at a plant's edge in the live engine.

A burst (``load.bursts``) adds ``rate`` events per scenario second of one flow to the plants it
names, for ``duration`` from ``at``. The virtual plant twin carries the same arrivals; here the edge
of each plant posts them through its outbox, so they meet the real gateway, broker, workers and ERP
twin on the way. Items, units and quantities follow the virtual engine: issues and backflushes
consume the scenario's component, confirmations and moves carry the line's product.

The arrivals are drawn once, up front, from a seed of the run and the plant (:mod:`twins.bursts`, the
virtual plant draws the same ones), so a restarted edge draws the same ones and resumes after those it
already stored (a count in its saved state).
"""

from __future__ import annotations

from live.plant_host import find_plant
from scenarios.spec import Scenario
from twins.bursts import BurstArrivals, draw_bursts

__all__ = ["BurstArrivals", "plan_bursts"]


def plan_bursts(scenario: Scenario, plant_id: str) -> tuple[BurstArrivals, ...]:
    """Every burst of the scenario that names ``plant_id``, with its arrivals drawn (:mod:`twins.bursts`)."""
    return draw_bursts(scenario, find_plant(scenario, plant_id)[0])
