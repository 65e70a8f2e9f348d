"""The edge's own clock and identity, as the gateway sees them.

An edge stamps its events (confirmation boundaries, burst arrivals, ``t_edge``, ``t_sent``) with its own
clock. :class:`EdgeClock` is the run's :class:`~kernel.clock.ScaledClock` plus a skew that a fault can set
while the edge runs: ``{"skew_s": s}`` (scenario seconds, + ahead, - behind) in
``RUN_DIR/state/faults/edge-<plant>.json``, re-read at most twice a wall second. Converting an OPC UA server's
source timestamp is not skewed: that stamp is the server's clock, not the edge's.

The instance id (``X-Edge-Instance``) is kept in the state folder, so a restarted edge is the same source
and a second edge with the same credentials is a different one.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from kernel.clock import ScaledClock
from kernel.files import WatchedNumber, write_text_atomic

RECHECK_S = 0.5  # wall seconds between looks at the skew file


def skew_file(run_dir: Path, plant: str) -> Path:
    """Where a fault puts the skew of ``plant``'s edge clock."""
    return Path(run_dir) / "state" / "faults" / f"edge-{plant}.json"


def write_skew(run_dir: Path, plant: str, skew_s: float) -> None:
    """Skew ``plant``'s edge clock by ``skew_s`` scenario seconds (0 ends the fault); atomic."""
    write_text_atomic(skew_file(run_dir, plant), json.dumps({"skew_s": skew_s}))


def instance_id(store_path: Path) -> str:
    """The id of the edge installation whose outbox is ``store_path``: created on first start, kept beside it."""
    path = Path(store_path).with_suffix(".instance")
    if path.is_file():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = f"{path.stem}-{uuid.uuid4().hex[:12]}"
    path.write_text(value)
    return value


class EdgeClock:
    """A :class:`ScaledClock` whose ``now()`` is off by the injected skew."""

    def __init__(self, base: ScaledClock, path: Path | None = None, recheck_s: float = RECHECK_S):
        self.base, self.path = base, path
        self.epoch, self.speed = base.epoch, base.speed
        self._skew = None if path is None else WatchedNumber(path, "skew_s", 0.0, reader="edge", recheck_s=recheck_s)

    @property
    def skew(self) -> float:
        """The injected skew in scenario seconds (+ ahead, - behind), as last read."""
        return 0.0 if self._skew is None else self._skew.value

    def now(self) -> float:
        """Scenario seconds as this edge's clock tells them."""
        return self.base.now() + (0.0 if self._skew is None else self._skew.get())

    def to_scenario(self, wall: float) -> float:
        return self.base.to_scenario(wall)

    def to_wall(self, scenario_seconds: float) -> float:
        return self.base.to_wall(scenario_seconds)

    def wall_delay(self, scenario_seconds: float) -> float:
        return self.base.wall_delay(scenario_seconds)
