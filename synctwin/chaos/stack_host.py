"""The live stack as the control API's process host: kill, restart and state of its services.

The stack's own loop treats a service that died as a failure of the run; a service killed on purpose is
marked stopped first, and unmarked once it runs again, exactly as the stack does for its scheduled faults.
"""

from __future__ import annotations

import math
from typing import Any


class LiveStackHost:
    """Adapter from :class:`live.stack.LiveStack` to :class:`synctwin.chaos.control.ProcessHost`."""

    def __init__(self, stack: Any):
        self.stack = stack

    def names(self) -> list[str]:
        return [s.name for s in self.stack.services]

    def kill(self, name: str) -> None:
        self.stack._stopped.add(name)  # before the kill: the stack's loop must not take it for a crash
        self.stack.services[name].kill()

    def restart(self, name: str) -> None:
        self.stack._restart(name)
        self.stack._stopped.discard(name)

    def pid(self, name: str) -> int | None:
        return self.stack.services[name].pid

    def alive(self, name: str) -> bool:
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
