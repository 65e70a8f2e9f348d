"""What a calibration replays from a live run rather than fits: its breakers' openings and its edges' resumes.

Both hinge on chance that no other run repeats: a live breaker opens when the lanes' retries, each after its own
jitter draw, have failed often enough; a live edge retries on its backoff from whichever record failed first in
a WAN outage. :mod:`virtual.calibration` keeps them per outage window, and ``synctwin run --calibration`` replays
them at the live run's speed (``circuit_breaker.replay_openings``, ``integration.replay_edge_resumes``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from integration.delivery import CLOSED, HALF_OPEN, OPEN
from scenarios.generator import ERP_KINDS, FaultPlan
from virtual.breaker import LANES


def edge_resumes(trace: pd.DataFrame, scenario, hop: float) -> dict[str, list[float | None]]:
    """Per plant and WAN outage window, when the live edge posted its backlog again (scenario seconds after the
    window's end; None without a record from inside it): the first broker arrival of a record the edge took in
    during the outage, less the WAN's and the broker's latency and ``hop``, the fitted edge-to-broker hop
    (scenario seconds)."""
    plan, broker = FaultPlan.of(scenario), scenario.landscape.integration.broker.latency
    out: dict[str, list[float | None]] = {}
    if "plant" not in trace:
        return out
    for plant in scenario.landscape.all_plants:
        windows = plan.wan_outage.get(plant.id)
        if windows is None or windows.start.size == 0:
            continue
        mine = trace[(trace.plant == plant.id) & trace.t_broker.notna() & trace.t_edge.notna()]
        found: list[float | None] = []
        for start, end in zip(windows.start, windows.end, strict=True):
            inside = mine[(mine.t_edge >= start) & (mine.t_edge < end) & (mine.t_broker >= end)]
            first = float(inside.t_broker.min()) if len(inside) else math.nan
            resumed = first - plant.wan.latency - broker - hop - float(end)
            found.append(max(resumed, 0.0) if math.isfinite(resumed) else None)
        if any(v is not None for v in found):
            out[plant.id] = found
    return out


def breaker_timing(transitions: list[dict], scenario) -> tuple[dict[str, list[float | None]], np.ndarray]:
    """From a live run's breaker transitions: per ERP kind and outage window, when the breaker opened (scenario
    seconds after the window's start, None where it did not), and every half-opening's lateness beyond its
    grid point (``opened + k × cooldown``) and the lanes' mean jitter (scenario seconds). One worker per
    outage: the one whose breaker opened first."""
    policy, cooldown = scenario.landscape.integration.retry, scenario.landscape.integration.circuit_breaker.cooldown
    jitter = policy.initial / (LANES + 1)
    plan = FaultPlan.of(scenario)
    openings: dict[str, list[float | None]] = {}
    late: list[float] = []
    for kind in ERP_KINDS:
        mine = sorted((float(e["t"]), str(e["state"]), str(e.get("worker", ""))) for e in transitions
                      if e.get("target") == f"erp-{kind}" and e.get("replication", 0) == 0)
        windows = plan.erp_outage[kind]
        found: list[float | None] = []
        for start, end in zip(windows.start, windows.end, strict=True):
            opens = [(t, w) for t, s, w in mine if s == OPEN and start <= t < end]
            if not opens:
                found.append(None)
                continue
            opened, worker = opens[0]
            found.append(opened - float(start))
            closed = next((t for t, s, w in mine if s == CLOSED and w == worker and t > opened), np.inf)
            for t, s, w in mine:
                if s == HALF_OPEN and w == worker and opened < t <= closed:
                    grid = opened + cooldown * max(1.0, (t - opened) // cooldown)
                    late.append(t - grid - jitter)
        if found and any(v is not None for v in found):
            openings[kind] = found
    return openings, np.array(late, dtype=float)
