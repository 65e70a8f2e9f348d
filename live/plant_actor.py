"""A live plant as a Ray actor: :class:`live.plant_host.PlantHost` wrapped by ``ray.remote``, plus a handle.

The actor reserves no CPU slot: its work is one short publishing pass per tick on its own thread,
so a 2-core machine holds one actor per plant. Call ``ray.init`` in entry points only.
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
    ):
        self.plant_id = plant_id
        self.actor = LivePlantActor.options(name=None).remote(
            scenario, plant_id, str(run_dir), epoch, speed, port, insecure, tick
        )
        self.url = ""

    def start(self, timeout: float = 60.0) -> str:
        """Start the plant's server in the actor and return its endpoint URL."""
        self.url = ray.get(self.actor.start.remote(), timeout=timeout)
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
