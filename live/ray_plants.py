"""The plants' OPC UA servers of a live run as Ray actors (``synctwin up --plant-host ray``, the default)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from kernel.clock import ScaledClock
from scenarios.spec import Scenario


class RayPlants:
    """The plants' OPC UA servers as ``LivePlantActor`` s on an embedded, bounded Ray instance.

    ``pids`` lists every process Ray started for the run (collected once the actors are up) so a
    caller can check that ``shutdown`` left none behind."""

    def __init__(self, scenario: Scenario, run_dir: Path, clock: ScaledClock, insecure: bool):
        self.scenario, self.run_dir, self.clock, self.insecure = scenario, run_dir, clock, insecure
        self.handles: dict[str, Any] = {}
        self.pids: list[int] = []
        self._started = False

    def start(self, plants: list[str]) -> dict[str, str]:
        import psutil
        import ray

        from live.plant_actor import LivePlantHandle

        before = {p.pid for p in psutil.Process().children(recursive=True)}
        ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024**2,
                 log_to_driver=False,
                 configure_logging=False)
        self._started = True
        self.pids = [p.pid for p in psutil.Process().children(recursive=True) if p.pid not in before]
        for plant in plants:
            self.handles[plant] = LivePlantHandle(self.scenario, plant, self.run_dir, self.clock.epoch,
                                                  self.clock.speed, insecure=self.insecure)
        try:
            urls = {plant: handle.start() for plant, handle in self.handles.items()}
        finally:
            known = set(self.pids)
            self.pids += [p.pid for p in psutil.Process().children(recursive=True)
                          if p.pid not in before and p.pid not in known]
        return urls

    def stop_plants(self) -> None:
        """Stop every plant's server and actor (idempotent, never raises)."""
        for handle in self.handles.values():
            with contextlib.suppress(Exception):
                handle.stop(timeout=15.0)
        self.handles.clear()

    def shutdown(self) -> None:
        """Stop the plants and Ray itself."""
        self.stop_plants()
        if self._started:
            import ray

            with contextlib.suppress(Exception):
                ray.shutdown()
            self._started = False
