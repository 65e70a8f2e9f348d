"""A live plant as a Ray actor: :class:`live.plant_host.PlantHost` wrapped by ``ray.remote``, plus a handle.

The actor reserves no CPU slot: its work is one short publishing pass per tick on its own thread,
so a 2-core machine holds one actor per plant. Call ``ray.init`` in entry points only.

With ``max_restarts`` Ray restarts the actor when its process dies (a kill -9): the new process builds the
host with the same arguments and serves at once, on the same port, so the plant's edge reconnects to the
URL it knows and finds a server whose counters start from zero.
"""

from __future__ import annotations

from pathlib import Path

import ray

from actors.runtime import actor_class
from live.plant_host import PlantHost
from scenarios.spec import Scenario

LivePlantActor = actor_class(PlantHost)


class LivePlantHandle:
    """A small synchronous handle over one :data:`LivePlantActor`."""

    def __init__(
        self,
        scenario: Scenario,
        plant_id: str,
        run_dir: Path | str,
        epoch: float,
        speed: float,
        port: int = 0,
        insecure: bool = False,
        tick: float | None = None,
        max_restarts: int = 0,
    ):
        """``max_restarts`` > 0 (needs a fixed ``port``): Ray restarts a dead actor that many times."""
        if max_restarts and not port:
            raise ValueError("max_restarts needs a fixed port: a restarted plant must serve where its edge connects")
        self.plant_id = plant_id
        self.actor = LivePlantActor.options(name=None, max_restarts=max_restarts).remote(
            scenario, plant_id, str(run_dir), epoch, speed, port, insecure, tick, "127.0.0.1", bool(max_restarts)
        )
        self.url = ""
        self.pid = 0  # the actor's process

    def start(self, timeout: float = 60.0) -> str:
        """Start the plant's server in the actor and return its endpoint URL."""
        self.url = ray.get(self.actor.start.remote(), timeout=timeout)
        self.pid = int(self.status()["pid"])
        return self.url

    def status(self) -> dict:
        return ray.get(self.actor.status.remote())

    def command(self, machine: int, action: str) -> None:
        ray.get(self.actor.command.remote(machine, action))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server, then end the actor process."""
        try:
            ray.get(self.actor.stop.remote(), timeout=timeout)
        finally:
            ray.kill(self.actor)
