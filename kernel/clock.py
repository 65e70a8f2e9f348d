"""The live engine's scaled clock: every process of one run agrees on scenario time.

Scenario second 0 is the wall instant ``epoch`` (Unix seconds); ``speed`` scenario seconds pass per
wall second. Processes receive ``--epoch`` and ``--speed`` so their timestamps join in one trace.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ScaledClock:
    epoch: float
    speed: float = 60.0

    def now(self) -> float:
        """Scenario seconds since the run started."""
        return (time.time() - self.epoch) * self.speed

    def to_scenario(self, wall: float) -> float:
        """Scenario seconds for a Unix wall timestamp."""
        return (wall - self.epoch) * self.speed

    def to_wall(self, scenario_seconds: float) -> float:
        """Unix wall timestamp at which scenario time ``scenario_seconds`` is reached."""
        return self.epoch + scenario_seconds / self.speed

    def wall_delay(self, scenario_seconds: float) -> float:
        """Wall seconds that ``scenario_seconds`` of scenario time take."""
        return scenario_seconds / self.speed
