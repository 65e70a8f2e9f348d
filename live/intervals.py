"""The live chain's configured intervals: scenario-time settings, run at ``1/speed`` in wall time.

One time semantics (kernel/trace.py): a scenario's intervals (OPC UA sampling and publishing, the edge's
scan, flush and retry backoff) mean scenario seconds in both engines, so a live run at any speed has the
same configuration in scenario time. Only processing time is stretched by the speed.

An interval shorter than :data:`WALL_FLOOR` wall seconds would only burn CPU on a shared host; it is
raised to the floor and the run says so (:func:`floor_notes`).
"""

from __future__ import annotations

from dataclasses import dataclass

from scenarios.spec import EdgeSpec

WALL_FLOOR = 0.005  # wall seconds: the shortest loop period a live process is asked for


def wall_interval(scenario_seconds: float, speed: float, floor: float = WALL_FLOOR) -> float:
    """Wall seconds of a scenario-time interval at ``speed``, at least ``floor``."""
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    return max(floor, scenario_seconds / speed)


@dataclass(frozen=True)
class EdgeIntervals:
    """A plant's edge intervals in scenario seconds (``spec.landscape.plants[].edge``)."""

    sampling: float = 1.0
    publishing: float = 1.0
    scan: float = 1.0
    flush: float = 1.0
    retry_initial: float = 1.0
    retry_max: float = 60.0

    @classmethod
    def of(cls, edge: EdgeSpec) -> EdgeIntervals:
        """The intervals a plant's edge spec sets."""
        return cls(edge.sampling_interval, edge.publishing_interval, edge.scan_interval, edge.flush_interval,
                   edge.retry_initial, edge.retry_max)

    def wall(self, name: str, speed: float) -> float:
        """Wall seconds of interval ``name`` (a field of this class) at ``speed``."""
        return wall_interval(getattr(self, name), speed)


def floor_notes(plant: str, intervals: EdgeIntervals, speed: float) -> list[str]:
    """A note for every interval of ``plant`` the wall floor lengthened at ``speed``."""
    notes = []
    for name in ("sampling", "publishing", "scan", "flush", "retry_initial", "retry_max"):
        value = getattr(intervals, name)
        if value / speed < WALL_FLOOR:
            notes.append(f"{plant} edge {name} interval {value:g} s runs at {WALL_FLOOR * speed:g} scenario s: "
                         f"{WALL_FLOOR * 1000:g} ms wall is the shortest live loop period")
    return notes
