"""A plant's steady warehouse flows, drawn from the run's seed: the same arrivals in both engines.

Material issues (``load.material_issues`` per line) and inventory moves (``load.inventory_moves`` per plant)
arrive as Poisson processes, ``load.shift.change_burst_factor`` times as often during the first
``change_burst_duration`` of each shift (the first change at one shift length). The virtual plant
(``virtual/plant.py``) and the live edge (``live/edge_aggregator.py``) both take them from here, so a fidelity
comparison measures the integration layer, not two draws.

The draws are made per fixed chunk of scenario time: chunk ``k`` draws from the plant's stream (a seed of
its own from run seed, replication, plant and this stream) advanced to the ``k``-th block of 2**64 numbers, so
chunks are independent and drawn in any order: any window is computed from the chunks it touches, without
drawing the run before it, so memory stays of the order of one window, a restarted edge draws the same
arrivals again, and the live edge (replication 0) carries replication 0's arrivals. Items, units and
quantities as in :mod:`twins.bursts`: issues consume the scenario's component, moves carry the line's product.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kernel.trace import INVENTORY_MOVE, MATERIAL_ISSUE
from scenarios.generator import plant_seed
from scenarios.spec import Scenario

_STREAM = 0x57EAD  # apart from the machine bank, the bursts and the live services' streams of the same plant
CHUNK = 3600.0  # scenario seconds drawn at once, halved until a chunk holds at most MAX_PER_CHUNK expected arrivals
MAX_PER_CHUNK = 2**18
_CACHED_CHUNKS = 2  # windows move forward: the chunk in use and the one before are enough


@dataclass(frozen=True)
class FlowArrivals:
    """One flow's arrivals in a window: sorted times (scenario seconds), lines (0-based) and quantities.

    ``item`` is the consumed component for issues, ``None`` for the line's product (moves)."""

    flow: str
    item: str | None
    unit: str
    times: np.ndarray
    lines: np.ndarray
    qty: np.ndarray

    def __len__(self) -> int:
        return int(self.times.size)

    def take(self, mask: np.ndarray) -> FlowArrivals:
        """The arrivals selected by ``mask`` (boolean or index array)."""
        return FlowArrivals(self.flow, self.item, self.unit, self.times[mask], self.lines[mask], self.qty[mask])


def shift_change_windows(length: float, duration: float, t_from: float, t_to: float) -> list[tuple[float, float]]:
    """The parts inside [t_from, t_to) of the shift-change windows [k * length, k * length + duration), k >= 1."""
    if duration <= 0 or t_to <= t_from:
        return []
    first = max(1, int(np.floor((t_from - duration) / length)) + 1)
    out = []
    k = first
    while k * length < t_to:
        s, e = k * length, k * length + duration
        if e > t_from:
            out.append((max(s, t_from), min(e, t_to)))
        k += 1
    return out


def chunk_length(peak_rate: float) -> float:
    """The chunk for a plant whose steady flows peak at ``peak_rate`` arrivals per second: :data:`CHUNK`,
    halved until it holds at most :data:`MAX_PER_CHUNK` arrivals at that rate (memory stays bounded)."""
    chunk = CHUNK
    while peak_rate * chunk > MAX_PER_CHUNK and chunk > 1e-3:
        chunk /= 2
    return chunk


class WarehouseArrivals:
    """The steady material issues and inventory moves of one plant in one replication, by window."""

    def __init__(self, scenario: Scenario, plant_index: int, replication: int = 0, chunk: float | None = None):
        """``chunk`` (scenario seconds) overrides :func:`chunk_length`'s; both engines must use the same."""
        plant = scenario.landscape.all_plants[plant_index]
        load = scenario.load
        self._bits = np.random.PCG64(plant_seed(scenario, plant_index, replication, stream=_STREAM))
        self._start = self._bits.state
        self._rng = np.random.Generator(self._bits)
        self.lines = plant.lines
        self.end = float(scenario.run.duration)  # the run's last scenario second: no arrivals after it
        shift = load.shift
        self._shift = (float(shift.length), float(shift.change_burst_duration), float(shift.change_burst_factor))
        component_unit = plant.component_unit or load.backflush_unit
        # (flow, arrivals per second at the plant, item, unit)
        self._flows = ((MATERIAL_ISSUE, load.material_issues * plant.lines, load.backflush_item, component_unit),
                       (INVENTORY_MOVE, load.inventory_moves, None, plant.unit))
        self._rates = [float(rate) for _, rate, _, _ in self._flows]
        self.chunk = float(chunk) if chunk is not None else chunk_length(sum(self._rates) * self._shift[2])
        self._cache: dict[int, tuple[FlowArrivals, ...]] = {}

    @property
    def active(self) -> bool:
        """Whether any steady flow has a rate above zero."""
        return any(rate > 0 for _, rate, _, _ in self._flows)

    def between(self, t_from: float, t_to: float) -> tuple[FlowArrivals, ...]:
        """Every flow's arrivals in [t_from, t_to) (issues, then moves)."""
        if t_to <= t_from or not self.active:
            return tuple(self._empty(spec) for spec in self._flows)
        first, last = int(np.floor(t_from / self.chunk)), int(np.ceil(t_to / self.chunk)) - 1
        parts = [self._chunk(k) for k in range(max(first, 0), last + 1)]
        out = []
        for i, spec in enumerate(self._flows):
            pieces = [p[i] for p in parts]
            times = np.concatenate([p.times for p in pieces]) if pieces else np.empty(0)
            whole = FlowArrivals(spec[0], spec[2], spec[3], times,
                                 np.concatenate([p.lines for p in pieces]) if pieces else np.empty(0, np.int16),
                                 np.concatenate([p.qty for p in pieces]) if pieces else np.empty(0))
            lo, hi = np.searchsorted(times, t_from, "left"), np.searchsorted(times, t_to, "left")
            out.append(whole.take(slice(lo, hi)))
        return tuple(out)

    def _chunk(self, k: int) -> tuple[FlowArrivals, ...]:
        cached = self._cache.get(k)
        if cached is not None:
            return cached
        drawn = self._draw(k)
        if len(self._cache) >= _CACHED_CHUNKS:
            self._cache.pop(min(self._cache))
        self._cache[k] = drawn
        return drawn

    def _draw(self, k: int) -> tuple[FlowArrivals, ...]:
        """Chunk ``k``'s arrivals: [k * chunk, (k + 1) * chunk) of the plant's stream, advanced to the chunk
        (2**64 draws apart, so chunks never share a number): cheaper than seeding each chunk anew."""
        bits = self._bits
        bits.state = self._start
        bits.advance(k << 64)
        rng = self._rng
        c0 = k * self.chunk
        length, duration, factor = self._shift
        extra = shift_change_windows(length, duration, c0, c0 + self.chunk) if factor > 1 else []
        # Per flow: its arrivals at the base rate over the chunk, then the shift changes' extra arrivals
        # ((factor - 1) x the base rate inside their windows). Scalar draws: numpy's overhead dominates here.
        spans = [(c0, self.chunk, 1.0)] + [(s, e - s, factor - 1.0) for s, e in extra]
        counts = [[rng.poisson(rate * width * scale) for _, width, scale in spans] for rate in self._rates]
        per_flow = [sum(c) for c in counts]
        total = sum(per_flow)
        u = rng.random(3 * total)  # arrival times, lines, quantities
        if extra:
            start = np.repeat(np.array([s for s, _, _ in spans] * len(per_flow)), np.ravel(counts))
            width = np.repeat(np.array([w for _, w, _ in spans] * len(per_flow)), np.ravel(counts))
        else:
            start, width = c0, self.chunk
        times = start + u[:total] * width
        lines = (u[total:2 * total] * self.lines).astype(np.int16)
        n_issue = per_flow[0]
        qty = u[2 * total:]
        qty[:n_issue] = np.rint(50.0 + 450.0 * qty[:n_issue]) / 10.0  # 5.0 to 50.0 in steps of 0.1
        qty[n_issue:] = np.floor(1.0 + 99.0 * qty[n_issue:])  # 1 to 99
        out = []
        for (flow, _, item, unit), part in zip(self._flows, (slice(0, n_issue), slice(n_issue, None)), strict=True):
            order = np.argsort(times[part])
            out.append(FlowArrivals(flow, item, unit, times[part][order], lines[part][order], qty[part][order]))
        return tuple(out)

    @staticmethod
    def _empty(spec: tuple) -> FlowArrivals:
        flow, _, item, unit = spec
        return FlowArrivals(flow, item, unit, np.empty(0), np.empty(0, np.int16), np.empty(0))
