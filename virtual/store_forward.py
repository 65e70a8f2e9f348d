"""Edge store-and-forward over a plant's outbound stream.

The edge accepts each event and forwards it at once while the WAN is up and nothing waits in its
buffer; it buffers while the WAN (or the gateway behind it) is down, and after an outage the backlog
drains at ``drain_rate`` from the edge's first posting attempt after the link heals: as the live edge's
poster, it retries a failed post after ``retry_initial``, doubling up to ``retry_max``, from its first
failure in the outage (so a long outage ends, on average, half a ``retry_max`` before the drain begins), or
when a calibrated live run's edge did (``resumes``).
An event that arrives while a backlog still waits queues behind it (FIFO)
and is forwarded at the drain rate too; once the backlog is gone, events pass straight through again.
So ``drain_rate`` paces only a backlog, never the steady stream (the live edge's poster does the same,
``live/edge_poster.py``). The queued events form a FIFO with service ``1/drain_rate`` whose customers
become ready when the link is up; the closed-form Lindley recursion gives their forward times at once
(a few passes decide which events queue). When a window's arrivals would overflow the bound, that
window is replayed event by event, exactly, under the overflow policy: ``block`` delays acceptance
until a slot frees (the source keeps the record), ``drop_newest`` and ``drop_oldest`` discard visibly
(outcome ``rejected``, reason ``edge_overflow_dropped``).

Events handed over in an earlier window keep their forward times: ``drop_oldest`` can only discard
events of the current window, so an overflow that starts later drops the newest events instead.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from scenarios.generator import Windows
from scenarios.spec import EdgeSpec
from twins.erp import fifo_departures


@dataclass
class StoreAndForward:
    spec: EdgeSpec
    wan_down: Windows
    last_forward: float = float("-inf")  # forward time of the last event that drained from the backlog
    buffered: np.ndarray = field(default_factory=lambda: np.empty(0))  # forward times of handed-over events
    dropped_total: int = 0
    peak_depth: int = 0
    source_clock: float = float("-inf")  # with `block`, a held-back source hands over no earlier than this
    first_failure: dict[int, float] = field(default_factory=dict)  # per outage: the edge's first failed post
    resumes: tuple[float | None, ...] = ()  # per outage: a live run's resume, s after the outage ends (replayed)

    @property
    def step(self) -> float:
        return 1.0 / self.spec.drain_rate

    def forward(self, t_accept: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For sorted arrival times: (t_edge acceptance, t_forward, dropped mask)."""
        n = t_accept.size
        if n == 0:
            return t_accept.copy(), t_accept.copy(), np.zeros(0, dtype=bool)
        t_accept = np.maximum(t_accept, self.source_clock)  # still held back from an earlier window
        carried = np.sort(self.buffered[self.buffered > t_accept[0]])
        result = self._vectorised(t_accept, carried)
        if result is None:  # the buffer fills (or the queue took too many passes to settle)
            result = self._event_by_event(t_accept, carried)
        t_edge, fwd, dropped, drained = result
        if drained.any():
            self.last_forward = max(self.last_forward, float(fwd[drained].max()))
        kept = fwd[~dropped]
        self.buffered = np.concatenate([carried, kept])
        self.dropped_total += int(dropped.sum())
        return t_edge, fwd, dropped

    def _ready(self, t_accept: np.ndarray) -> np.ndarray:
        """When each event may leave the edge: at once while the link is up; inside an outage, at the edge's
        first posting attempt after it heals (its retry backoff, counted from its first failure there)."""
        ready = np.array(t_accept, dtype=float)
        idx = self.wan_down.index(ready)
        for w in np.unique(idx[idx >= 0]).tolist():
            end = float(self.wan_down.end[w])
            if w < len(self.resumes) and self.resumes[w] is not None:
                ready[idx == w] = end + float(self.resumes[w])
                continue
            if w not in self.first_failure:  # reassigned, not mutated: a copy of this edge keeps its own
                self.first_failure = {**self.first_failure, w: float(ready[idx == w].min())}
            ready[idx == w] = self._first_retry_after(self.first_failure[w], end)
        return ready

    def _first_retry_after(self, failed: float, end: float) -> float:
        """The first posting attempt at or after ``end`` of an edge that first failed at ``failed``."""
        t, delay, longest = failed, self.spec.retry_initial, self.spec.retry_max
        while t < end and delay < longest:  # doubling, then every `retry_max`
            t, delay = t + delay, min(longest, delay * 2)
        return t if t >= end else t + longest * np.ceil((end - t) / longest)

    def _vectorised(self, t_accept: np.ndarray, carried: np.ndarray):
        """Closed form when the bound is never reached; None when some arrival would find it full."""
        n = t_accept.size
        drained = self._drain(t_accept, self._ready(t_accept), carried)
        if drained is None:
            return None
        fwd, queued = drained
        ahead = np.sort(np.concatenate([carried, fwd]))
        depth = len(carried) + np.arange(n) - np.searchsorted(ahead, t_accept, side="right")
        depth = np.maximum(depth, 0)
        if (depth >= self.spec.buffer).any():
            return None
        self.peak_depth = max(self.peak_depth, int(depth.max(initial=0)) + 1)
        return t_accept.copy(), fwd, np.zeros(n, dtype=bool), queued

    def _drain(self, t_accept: np.ndarray, ready: np.ndarray,
               carried: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """Forward times: at once for an event that finds the link up and nothing waiting; otherwise
        FIFO behind the backlog at the drain rate. An event queues when the link is down or an earlier
        event is still waiting at its arrival; queueing only grows the waits, so a few passes settle it."""
        queued = ready > t_accept
        waiting_before = carried.max(initial=-np.inf)
        for _ in range(64):
            fwd = ready.copy()
            if queued.any():
                r = ready[queued]
                # Service start = max(ready_i, start_{i-1} + step); snapped to the ready time where nothing
                # queued ahead (the closed form adds and subtracts sums, which costs float digits).
                start = fifo_departures(r, np.full(r.size, self.step), self.last_forward + self.step) - self.step
                fwd[queued] = np.where(start <= r + 1e-9 * np.maximum(1.0, np.abs(r)), r, start)
            before = np.maximum.accumulate(np.concatenate([[waiting_before], fwd[:-1]]))
            grown = queued | (t_accept < before)
            if (grown == queued).all():
                return fwd, queued
            queued = grown
        return None

    def _event_by_event(self, t_accept: np.ndarray, carried: np.ndarray):
        """Exact replay of a window whose buffer fills, under the overflow policy."""
        n, cap, step, policy = t_accept.size, self.spec.buffer, self.step, self.spec.overflow
        t_edge = t_accept.copy()
        fwd = np.full(n, np.nan)
        dropped = np.zeros(n, dtype=bool)
        queued = np.zeros(n, dtype=bool)
        ready = self._ready(t_accept)
        waiting_old = deque(carried.tolist())  # handed over earlier, forward times fixed
        waiting: deque[int] = deque()  # this window's kept events, in order
        next_free = self.last_forward + step
        source_clock = self.source_clock

        def send_head() -> float:
            nonlocal next_free
            head = waiting.popleft()
            fwd[head] = max(ready[head], next_free)
            next_free = fwd[head] + step
            return fwd[head]

        for i in range(n):
            t = max(t_accept[i], source_clock)
            while waiting_old and waiting_old[0] <= t:
                waiting_old.popleft()
            while waiting and max(ready[waiting[0]], next_free) <= t:
                send_head()
            if not waiting and not waiting_old and ready[i] <= t == t_accept[i]:
                fwd[i] = t  # link up, nothing waiting: straight through, no drain slot taken
                self.peak_depth = max(self.peak_depth, 1)
                continue
            if len(waiting_old) + len(waiting) >= cap:
                if policy == "block":
                    left = waiting_old.popleft() if waiting_old else send_head()
                    t = source_clock = max(t, left)
                elif policy == "drop_newest" or not waiting:
                    dropped[i] = True
                    continue
                else:  # drop_oldest among the events this window still holds
                    dropped[waiting.popleft()] = True
            t_edge[i] = t
            if t != t_accept[i]:
                ready[i] = float(self._ready(np.array([t]))[0])
            waiting.append(i)
            queued[i] = True
            self.peak_depth = max(self.peak_depth, len(waiting_old) + len(waiting))
        while waiting:
            send_head()
        self.source_clock = source_clock
        return t_edge, fwd, dropped, queued & ~dropped
