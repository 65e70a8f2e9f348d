"""Drawn arrivals at a plant's edge in the live engine: the scenario's load bursts and the steady warehouse flows.

A burst (``load.bursts``) adds ``rate`` events per scenario second of one flow to the plants it
names, for ``duration`` from ``at``. The virtual plant twin carries the same arrivals; here the edge
of each plant posts them through its outbox, so they meet the real gateway, broker, workers and ERP
twin on the way. Items, units and quantities follow the virtual engine: issues and backflushes
consume the scenario's component, confirmations and moves carry the line's product.

The arrivals are drawn once, up front, from a seed of the run and the plant (:mod:`twins.bursts`, the
virtual plant draws the same ones), so a restarted edge draws the same ones and resumes after those it
already stored (a count in its saved state). The steady material issues and inventory moves come the same
way from :mod:`twins.warehouse_arrivals` (replication 0's draw, the one a virtual run's first replication
carries), drawn by window of scenario time; the saved state keeps the time before which they were stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from live.plant_host import find_plant
from scenarios.spec import Scenario
from twins.bursts import BurstArrivals, draw_bursts
from twins.warehouse_arrivals import WarehouseArrivals

__all__ = ["ArrivalSink", "BurstArrivals", "collect_bursts", "collect_steady", "first_undrawn", "plan_bursts"]

# Stores one arrival: (flow, line 0-based, item or None for the line's product, qty, unit, scenario time).
ArrivalSink = Callable[[str, int, "str | None", float, str, float], None]


def plan_bursts(scenario: Scenario, plant_id: str) -> tuple[BurstArrivals, ...]:
    """Every burst of the scenario that names ``plant_id``, with its arrivals drawn (:mod:`twins.bursts`)."""
    return draw_bursts(scenario, find_plant(scenario, plant_id)[0])


def collect_bursts(bursts: tuple[BurstArrivals, ...], sent: list[int], now: float, budget: float,
                   sink: ArrivalSink) -> float:
    """Burst arrivals due by ``now`` not stored yet (``sent[k]`` of burst ``k`` are), at most ``budget`` of them,
    to ``sink``; updates ``sent`` and returns the budget left."""
    for k, burst in enumerate(bursts):
        due = burst.due(now)
        end = due if math.isinf(budget) else min(due, sent[k] + int(budget))
        for i in range(sent[k], end):
            sink(burst.flow, burst.lines[i], burst.item, burst.qty[i], burst.unit, burst.times[i])
        budget -= end - sent[k]
        sent[k] = end
    return budget


def collect_steady(warehouse: WarehouseArrivals, until: float, now: float, budget: float,
                   sink: ArrivalSink) -> float:
    """Steady warehouse arrivals in [``until``, ``now``) (none after the run's end), at most ``budget`` of them,
    in time order, to ``sink``; returns the new ``until``: every arrival before it is stored."""
    end = min(now, warehouse.end)
    if not warehouse.active or budget < 1 or end <= until:
        return until
    flows = warehouse.between(until, end)
    times = np.concatenate([f.times for f in flows])
    which = np.repeat(np.arange(len(flows)), [len(f) for f in flows])
    index = np.concatenate([np.arange(len(f)) for f in flows])
    order = np.argsort(times, kind="stable")
    take = order.size if math.isinf(budget) else min(order.size, int(budget))
    for j in order[:take]:
        f, i = flows[which[j]], index[j]
        sink(f.flow, int(f.lines[i]), f.item, float(f.qty[i]), f.unit, float(f.times[i]))
    return float(times[order[take]]) if take < order.size else float(end)


def first_undrawn(bursts: tuple[BurstArrivals, ...], sent: list[int], warehouse: WarehouseArrivals | None,
                  steady_until: float, now: float) -> float:
    """The earliest arrival due by ``now`` that is not stored yet (held back for want of room in the outbox);
    infinity when every one is."""
    waiting = [burst.times[sent[k]] for k, burst in enumerate(bursts) if burst.due(now) > sent[k]]
    if warehouse is not None and warehouse.active and steady_until < min(now, warehouse.end):
        waiting.append(steady_until)
    return min(waiting, default=math.inf)
