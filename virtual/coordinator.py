"""Drive plant and hub actors through conservative time windows and gather the results.

Plants never wait on the hub (everything a plant needs from the enterprise side is a function of
time and the fault plan), so the coordinator keeps plant windows a few steps ahead and lets Ray
pipeline the calls; one Ray call per actor per window, never one per event.

The first group of replications has its hub in the driver, which otherwise only waits on Ray: every
trace row passes the hub, so a hub actor serialised the whole trace into the object store for the
driver to copy out again, and it cost one more worker process to start (a second core's worth of
replications still gets hub actors).
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import ray

from actors.runtime import actor_class, spread
from scenarios.spec import Scenario
from virtual import batch as B
from virtual.hosts import HubHost, PlantHost

RemotePlantHost = actor_class(PlantHost)
RemoteHubHost = actor_class(HubHost)

IN_FLIGHT_WINDOWS = 3  # windows submitted ahead of the one being collected


@dataclass
class EngineResult:
    rows: B.Batch  # every finished trace row; the ERP ledger is batch.postings(rows)
    lots: dict[str, np.ndarray]
    breaker: list[dict]
    placement: dict[str, int]  # Ray node id -> plant actors it hosted


def window_ends(duration: float, window: float) -> np.ndarray:
    """End times of the windows covering [0, duration]."""
    ends = np.arange(window, duration, window)
    return np.append(ends, duration)


def split(items: list[int], parts: int) -> list[list[int]]:
    """Round-robin ``items`` into ``parts`` non-empty groups."""
    parts = max(1, min(parts, len(items)))
    return [items[i::parts] for i in range(parts)]


def run_windows(scenario: Scenario, replications: int, plant_actors: int, hub_actors: int,
                on_window: Callable[[float], None] | None = None) -> EngineResult:
    """Simulate the scenario on Ray actors; ``on_window`` is told each finished window's end time."""
    n_plants = len(scenario.landscape.all_plants)
    plant_groups = split(list(range(n_plants)), plant_actors)
    hub_groups = split(list(range(replications)), hub_actors)
    # Plant groups go round-robin over the cluster's nodes; hubs start on the nodes after them.
    where = spread(len(plant_groups) + len(hub_groups) - 1)
    plant_hosts = [RemotePlantHost.options(**opts).remote(scenario, group, replications)
                   for group, opts in zip(plant_groups, where, strict=False)]
    hub_hosts = [RemoteHubHost.options(**opts).remote(scenario, group, replications)
                 for group, opts in zip(hub_groups[1:], where[len(plant_groups):], strict=False)]
    local_hub = HubHost(scenario, hub_groups[0], replications)  # built while the actors start
    rows: list[B.Batch] = []
    lots: list[dict] = []
    pending: deque = deque()

    def keep(rows_part: B.Batch, lots_part: list[dict], owned: bool) -> None:
        # ray.get maps numpy arrays zero-copy, pinning their objects in the store for as long as the
        # arrays live: kept as they are, a big fleet's results filled the store and spilled to disk.
        # Owned copies let Ray free each window's objects (the local hub's rows are its own already;
        # its lots still point into the plants' results).
        rows.append(rows_part if owned else {name: np.array(column) for name, column in rows_part.items()})
        lots.extend({name: np.array(column) for name, column in part.items()} for part in lots_part)

    def collect(t_end: float, plant_refs: list, hub_refs: list, last: bool = False) -> None:
        keep(*(local_hub.finish() if last else local_hub.step(t_end, *ray.get(plant_refs))), owned=True)
        for part in ray.get(hub_refs):
            keep(*part, owned=False)
        if on_window:
            on_window(t_end)

    try:
        placement = dict(Counter(ray.get([host.ray_node_id.remote() for host in plant_hosts])))
        for t_end in window_ends(scenario.run.duration, scenario.run.window):
            plant_refs = [host.step.remote(float(t_end)) for host in plant_hosts]
            hub_refs = [hub.step.remote(float(t_end), *plant_refs) for hub in hub_hosts]
            pending.append((float(t_end), plant_refs, hub_refs))
            if len(pending) > IN_FLIGHT_WINDOWS:
                collect(*pending.popleft())
        while pending:
            collect(*pending.popleft())
        collect(scenario.run.duration, [], [hub.finish.remote() for hub in hub_hosts], last=True)
        breaker = local_hub.breaker_log()
        breaker += [e for log in ray.get([hub.breaker_log.remote() for hub in hub_hosts]) for e in log]
    finally:
        for actor in plant_hosts + hub_hosts:
            ray.kill(actor)
    merged_lots = {k: np.concatenate([d[k] for d in lots]) for k in lots[0]} if lots else {}
    return EngineResult(B.concat(rows), merged_lots, breaker, placement)
