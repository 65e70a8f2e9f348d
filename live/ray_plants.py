"""The plants' OPC UA servers of a live run as Ray actors (``synctwin up --plant-host ray``, the default).

Each actor has a fixed port and Ray's ``max_restarts``: a plant actor whose process is killed (kill -9,
:meth:`RayPlants.kill`) is restarted by Ray and serves again on the same port with its counters at zero.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from kernel.clock import ScaledClock
from kernel.net import free_port
from scenarios.spec import Scenario

RESTARTS = 100  # kills a plant actor survives in one run
INIT_ATTEMPTS = 3  # Ray's own start-up can time out on a busy host


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
        for attempt in range(1, INIT_ATTEMPTS + 1):
            try:
                ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024**2,
                         log_to_driver=False, configure_logging=False)
                break
            except Exception:  # noqa: BLE001 - Ray's start-up deadline passes on a loaded machine: try again
                with contextlib.suppress(Exception):
                    ray.shutdown()
                if attempt == INIT_ATTEMPTS:
                    raise
        self._started = True
        self.pids = [p.pid for p in psutil.Process().children(recursive=True) if p.pid not in before]
        for plant in plants:
            self.handles[plant] = LivePlantHandle(self.scenario, plant, self.run_dir, self.clock.epoch,
                                                  self.clock.speed, port=free_port(), insecure=self.insecure,
                                                  max_restarts=RESTARTS)
        try:
            urls = {plant: handle.start(timeout=180.0) for plant, handle in self.handles.items()}  # a busy host
        finally:
            known = set(self.pids)
            self.pids += [p.pid for p in psutil.Process().children(recursive=True)
                          if p.pid not in before and p.pid not in known]
        return urls

    def kill(self, plant: str) -> int:
        """SIGKILL the process of ``plant``'s actor (Ray then restarts it); returns the pid killed."""
        import os
        import signal

        handle = self.handles[plant]
        pid = handle.pid
        os.kill(pid, signal.SIGKILL)
        return pid

    def running_pid(self, plant: str, timeout: float = 2.0) -> int | None:
        """The pid of ``plant``'s actor when it serves (a restarted one: its new pid), else None."""
        import ray

        handle = self.handles.get(plant)
        if handle is None:
            return None
        try:
            status = ray.get(handle.actor.status.remote(), timeout=timeout)
        except Exception:  # noqa: BLE001 - dead, restarting or busy: not serving now
            return None
        if not status.get("serving"):
            return None
        if status["pid"] != handle.pid:
            handle.pid = int(status["pid"])
            self.pids.append(handle.pid)
        return handle.pid

    def wait_serving(self, plant: str, timeout: float = 180.0) -> int:
        """Wait until Ray restarted ``plant``'s actor and it serves; its pid (TimeoutError after ``timeout``)."""
        import time

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            pid = self.running_pid(plant, timeout=min(5.0, max(0.5, end - time.monotonic())))
            if pid is not None:
                return pid
            time.sleep(0.2)
        raise TimeoutError(f"plant actor {plant} did not serve again within {timeout:g} s")

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
