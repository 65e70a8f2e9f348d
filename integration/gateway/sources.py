"""Who posts for a plant, and how far off its clock is: the gateway's view of each plant's edges.

Edges send three headers with every request: ``X-Edge-Instance`` (a stable id of the installation, kept in
its state), ``X-Edge-Clock`` (its own clock, scenario seconds, when it sent the request) and
``X-Edge-Rtt`` (how long its previous request took, scenario seconds). Per request, not per event, the
gateway notes them against the time the request's headers arrived:

* **Clock skew.** ``receive time - edge clock`` is the edge's clock error plus the one-way transit time,
  so the smallest of the last few samples (the least delayed request, as in Cristian's algorithm) is the
  offset estimate. A slow link delays a request but cannot make it arrive early: a positive sample is
  discounted by the edge's last round trip, so a thin or slicing link is not taken for a clock behind.
  Beyond ``skew_bound`` scenario seconds the plant's clock is *flagged*: the gateway logs it and keeps
  the episode for ``/admin/sources`` (a report names it: the plant's own timestamps
  are off in that window). A creation time in the future can only come from that clock, so such an
  event's ``t_created`` is corrected by the estimate; an old stamp cannot be told from an old event
  (or from one stamped by the OPC UA server's clock), so an edge running behind is flagged, not corrected.
* **Second source.** More than one instance seen for a plant within ``window`` scenario seconds is two
  edges posting with the same credentials; the episode is kept and logged. The broker's duplicate window
  and the workers' processed keys keep what both post single.

The state lives in the gateway process (one per ``synctwin gateway --workers 1``; with several uvicorn
workers each answers for the requests it served).
"""

from __future__ import annotations

import math
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from kernel.clock import ScaledClock

INSTANCE_HEADER = "X-Edge-Instance"
CLOCK_HEADER = "X-Edge-Clock"
SAMPLES = 16  # requests behind the offset estimate
NO_SHIFT = (0.0, math.inf)


@dataclass
class Source:
    """One edge instance of a plant."""

    instance: str
    first_seen: float
    last_seen: float
    requests: int = 0
    offsets: deque = field(default_factory=lambda: deque(maxlen=SAMPLES))

    @property
    def offset(self) -> float | None:
        """Receive time minus the edge's clock, least-delayed sample (None without clock readings)."""
        return min(self.offsets) if self.offsets else None


@dataclass
class Episode:
    """A stretch of scenario time a plant was flagged (clock skew or a second source)."""

    kind: str
    plant: str
    start: float
    end: float | None = None
    worst: float = 0.0  # largest |offset| (skew) or most sources seen at once

    def summary(self) -> dict[str, Any]:
        return {"kind": self.kind, "plant": self.plant, "start": self.start, "end": self.end, "worst": self.worst}


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and value > 0 else 0.0


class SourceWatch:
    """Per-plant sources and clock offsets; :meth:`observe` once per request returns the ``t_created`` shift."""

    def __init__(self, clock: ScaledClock, skew_bound: float = 120.0, window: float = 600.0):
        self.clock, self.skew_bound, self.window = clock, skew_bound, window
        self.plants: dict[str, dict[str, Source]] = {}
        self.open: dict[tuple[str, str], Episode] = {}
        self.episodes: list[Episode] = []
        self.shift: dict[str, float] = {}  # plant -> correction applied to t_created now

    def observe(self, plant: str, instance: str, edge_clock: str, received: float,
                rtt: str = "") -> tuple[float, float]:
        """Note one request whose headers arrived at wall time ``received`` (before its body, so a thin link
        does not count as clock error). Returns ``(shift, after)``: add ``shift`` to the ``t_created`` of its
        events created after scenario time ``after`` (in the future); ``(0, inf)`` when nothing is to be
        corrected. Requests without an instance id (tools, replays) are not an edge's and change nothing."""
        if not instance:
            return NO_SHIFT
        now = self.clock.to_scenario(received)
        sources = self.plants.get(plant)
        if sources is None:
            sources = self.plants[plant] = {}
        src = sources.get(instance)
        if src is None:
            src = sources[instance] = Source(instance, now, now)
            self._count_sources(plant, sources, now)
        src.last_seen = now
        src.requests += 1
        if edge_clock:
            try:
                sent = float(edge_clock)
            except ValueError:
                return NO_SHIFT
            if math.isfinite(sent):
                offset = now - sent
                if offset > 0:  # late: as much of it as the edge's last round trip took may be the link
                    offset = max(0.0, offset - _seconds(rtt))
                src.offsets.append(offset)
                shift = self._judge_clock(plant, src.offset, now)
                return (shift, now) if shift < 0 else NO_SHIFT
        return NO_SHIFT

    def _judge_clock(self, plant: str, offset: float | None, now: float) -> float:
        skewed = offset is not None and abs(offset) > self.skew_bound
        key = ("clock_skew", plant)
        episode = self.open.get(key)
        if skewed:
            if episode is None:
                episode = self._begin("clock_skew", plant, now)
                print(f"gateway: plant {plant}'s clock is off by {-offset:+.0f} s (scenario), flagged until it is "
                      f"back within {self.skew_bound:.0f} s; creation times in the future are corrected",
                      file=sys.stderr, flush=True)
            episode.worst = max(episode.worst, abs(offset))
            self.shift[plant] = offset
            return offset
        if episode is not None:
            self._end(key, now)
            self.shift.pop(plant, None)
            print(f"gateway: plant {plant}'s clock is back within {self.skew_bound:.0f} s", file=sys.stderr, flush=True)
        return 0.0

    def _count_sources(self, plant: str, sources: dict[str, Source], now: float) -> int:
        active = sum(1 for s in sources.values() if now - s.last_seen <= self.window)
        key = ("second_source", plant)
        if active > 1:
            episode = self.open.get(key)
            if episode is None:
                episode = self._begin("second_source", plant, now)
                print(f"gateway: plant {plant} posts from {active} edge instances with the same credentials",
                      file=sys.stderr, flush=True)
            episode.worst = max(episode.worst, float(active))
        elif key in self.open:  # ended when the other source was last seen
            seen = sorted(s.last_seen for s in sources.values())
            self._end(key, seen[-2] if len(seen) > 1 else now)
        return active

    def _begin(self, kind: str, plant: str, now: float) -> Episode:
        episode = self.open[(kind, plant)] = Episode(kind, plant, now)
        self.episodes.append(episode)
        return episode

    def _end(self, key: tuple[str, str], now: float) -> None:
        self.open.pop(key).end = now

    def report(self) -> dict[str, Any]:
        """Every plant's sources (active within the window), clock offset and flags, and every episode."""
        now = self.clock.now()
        plants = {}
        for plant, sources in self.plants.items():
            active = self._count_sources(plant, sources, now)
            plants[plant] = {
                "active_sources": active,
                "sources": [{"instance": s.instance, "first_seen": s.first_seen, "last_seen": s.last_seen,
                             "requests": s.requests, "clock_offset_s": s.offset} for s in sources.values()],
                "clock_skew_flagged": ("clock_skew", plant) in self.open,
                "t_created_shift_s": self.shift.get(plant, 0.0),
            }
        return {"now": now, "skew_bound_s": self.skew_bound, "window_s": self.window, "plants": plants,
                "episodes": [e.summary() for e in self.episodes]}
