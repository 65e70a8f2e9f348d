"""A plain single-process SimPy model of the ERP-posting flows, written only as a yardstick.

One SimPy process per machine (an event per cycle, breakdowns and repairs), an MES process that
reports every interval, Poisson processes for material issues and inventory moves, a process per
posting through edge, WAN and broker latencies into a one-server ERP (``simpy.Resource``). It
models the same flows and distributions as the engine for scenarios without faults, shift changes
or quality holds, so the two can be compared at equal SLA figures.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import simpy

from scenarios.spec import Scenario


def run_yardstick(scenario: Scenario, seed: int = 0) -> pd.DataFrame:
    """Simulate ``scenario`` and return one row per ERP posting: flow, plant, t_created, t_delivered."""
    env = simpy.Environment()
    rng = np.random.default_rng(seed)
    load = scenario.load
    erp_spec = scenario.landscape.erp
    erp = simpy.Resource(env, capacity=1)
    broker = scenario.landscape.integration.broker.latency
    postings: list[tuple[str, str, float, float]] = []

    def post(flow: str, plant, delay: float):
        yield env.timeout(delay)
        created = env.now
        yield env.timeout(plant.wan.latency + broker + erp_spec.network_latency)
        with erp.request() as slot:
            yield slot
            yield env.timeout(rng.exponential(erp_spec.service.mean))
        postings.append((flow, plant.id, created, env.now))

    for plant in scenario.landscape.all_plants:
        n = plant.lines * plant.machines_per_line
        good = np.zeros(n, dtype=np.int64)
        scrap = np.zeros(n, dtype=np.int64)
        line_total = np.zeros(plant.lines, dtype=np.int64)

        def machine(i: int, plant=plant, good=good, scrap=scrap, line_total=line_total):
            while True:
                fails_at = env.now + rng.exponential(plant.mtbf)
                while True:
                    cycle = rng.exponential(plant.cycle_time)
                    if env.now + cycle > fails_at:
                        yield env.timeout(fails_at - env.now)
                        break
                    yield env.timeout(cycle)
                    if rng.random() < plant.scrap_rate:
                        scrap[i] += 1
                    else:
                        good[i] += 1
                        line = i // plant.machines_per_line
                        line_total[line] += 1
                        if line_total[line] % load.lot_size == 0:  # the MES closes a lot
                            env.process(post("goods_receipt", plant, 0.0))
                            env.process(post("shipment", plant, rng.exponential(load.ship_delay)))
                yield env.timeout(rng.exponential(plant.mttr))

        def mes(plant=plant, good=good, scrap=scrap):
            line_of = np.arange(good.size) // plant.machines_per_line
            while True:
                yield env.timeout(load.confirmation_interval)
                for i in range(good.size):
                    if good[i]:
                        env.process(post("operation_confirmation", plant, rng.uniform(0, 5)))
                    if scrap[i]:
                        env.process(post("scrap", plant, rng.uniform(0, 5)))
                per_line = np.bincount(line_of, weights=good, minlength=plant.lines).astype(np.int64)
                for line in range(plant.lines):
                    if per_line[line]:
                        env.process(post("backflush", plant, rng.uniform(0, 5)))
                good[:] = 0
                scrap[:] = 0

        def poisson(flow: str, rate: float, plant=plant):
            while rate > 0:
                yield env.timeout(rng.exponential(1 / rate))
                env.process(post(flow, plant, 0.0))

        for i in range(n):
            env.process(machine(i))
        env.process(mes())
        env.process(poisson("material_issue", load.material_issues * plant.lines))
        env.process(poisson("inventory_move", load.inventory_moves))
    env.run(until=scenario.run.duration)
    return pd.DataFrame(postings, columns=["flow", "plant", "t_created", "t_delivered"])
