"""The live stack as the control API's process host: kill, restart and state of its services.

The stack's own loop treats a service that died as a failure of the run; a service killed on purpose is
marked stopped first, and unmarked once it runs again, exactly as the stack does for its scheduled faults.
Plants hosted by Ray appear as ``opcua-<plant>`` too: a kill is a SIGKILL of the actor's process, Ray
restarts the actor, and a restart waits until it serves again.
"""

from __future__ import annotations

import math
from typing import Any


class LiveStackHost:
    """Adapter from :class:`live.stack.LiveStack` to :class:`synctwin.chaos.control.ProcessHost`."""

    def __init__(self, stack: Any):
        self.stack = stack

    def _actor(self, name: str) -> str | None:
        """The plant of ``name`` when it is a Ray-hosted plant (``opcua-<plant>``), else None."""
        plants = self.stack.ray_plants
        plant = name.removeprefix("opcua-")
        return plant if plants is not None and name.startswith("opcua-") and plant in plants.handles else None

    def names(self) -> list[str]:
        ray = self.stack.ray_plants
        return [s.name for s in self.stack.services] + [f"opcua-{p}" for p in (ray.handles if ray else [])]

    def kill(self, name: str) -> None:
        if (plant := self._actor(name)) is not None:
            self.stack.ray_plants.kill(plant)
            return
        self.stack._stopped.add(name)  # before the kill: the stack's loop must not take it for a crash
        self.stack.services[name].kill()

    def restart(self, name: str) -> None:
        if (plant := self._actor(name)) is not None:
            self.stack.ray_plants.wait_serving(plant)  # Ray restarts it; this waits until it serves
            return
        self.stack._restart(name)
        self.stack._stopped.discard(name)

    def pid(self, name: str) -> int | None:
        if (plant := self._actor(name)) is not None:
            return self.stack.ray_plants.handles[plant].pid
        return self.stack.services[name].pid

    def alive(self, name: str) -> bool:
        if (plant := self._actor(name)) is not None:
            return self.stack.ray_plants.running_pid(plant) is not None
        return self.stack.services[name].alive()

    def now(self) -> float:
        clock = self.stack.clock
        return clock.now() if clock is not None else -math.inf

    def proxies(self):
        return self.stack.relays

    def end_run(self) -> None:
        """End production now: the stack drains, stops and collects as after its scenario duration."""
        if self.stack.clock is not None:
            self.stack.duration = min(self.stack.duration, max(1.0, self.stack.clock.now()))
