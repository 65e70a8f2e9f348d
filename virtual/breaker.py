"""The circuit breaker of one ERP target in the virtual hub: when it opens and closes in each outage.

The live worker's ``LANES`` lanes each send one request at a time, so the failures before the breaker opens
are the first ``LANES`` messages' attempts and their retries, each after the failed request's round trip and
the backoff (mean jitter). It opens when the ``failure_threshold``-th of those answers (or where a live run's
breaker opened, replayed from a calibration), probes every ``cooldown`` on the grid of its opening and
closes at the first probe reaching the ERP after the outage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from integration.delivery import CLOSED, HALF_OPEN, OPEN, RetryPolicy
from scenarios.generator import Windows

LANES = 2  # the live worker's lanes per process (integration/workers/config.WorkerConfig.lanes)


@dataclass
class BreakerTimeline:
    """Open/close times of one target's breaker, one entry per outage window of that target."""

    outages: Windows
    threshold: int
    cooldown: float
    retries: np.ndarray = field(default_factory=lambda: np.zeros(1))  # a lane's failed requests after its first
    lanes: int = LANES
    answer: float = 0.0  # a failed request's arrival at the ERP -> its answer at the worker (opens the breaker)
    lag: float = 0.0  # a grid point -> its probe's arrival at the ERP (lanes' jitter, the request hop)
    failures: dict[int, list[float]] = field(default_factory=dict)
    t_open: dict[int, float] = field(default_factory=dict)
    replayed: tuple[float | None, ...] = ()  # per outage: a live run's opening, s after the outage starts

    @classmethod
    def of(cls, outages: Windows, threshold: int, cooldown: float, policy: RetryPolicy,
           answer: float = 0.0, request: float = 0.0, probe: float = 0.0,
           replayed: tuple[float | None, ...] = ()) -> BreakerTimeline:
        """A target's breaker; a lane retries its failed request after the answer (``answer``: the ERP's
        processing and the network back) and the policy's backoff (mean jitter), and the retry reaches the
        ERP after ``request`` (the worker's request hop and the network). ``probe``: a probe's calibrated
        lateness beyond the lanes' jitter; ``replayed``: openings taken from a live run (BreakerSpec)."""
        attempts = np.arange(1, min(threshold, policy.max_attempts, 10_000))  # a breaker set off: bounded
        steps = policy.delay(attempts, 0.5) + answer + request
        retries = np.concatenate([[0.0], np.cumsum(steps)]) if threshold > 1 else np.zeros(1)
        # The first of the waiting lanes leaves initial x E[min of LANES uniforms] after a grid point.
        lag = policy.initial / (LANES + 1) + probe + request
        return cls(outages, threshold, cooldown, np.asarray(retries, dtype=float), answer=answer, lag=lag,
                   replayed=tuple(replayed))

    def note_failures(self, t: np.ndarray) -> None:
        """Record failed first attempts: the first ``lanes`` of an outage start the lanes' request series
        (each retried after its backoff); the breaker opens at the threshold-th failed request, or where a
        live run's breaker opened (``replayed``) once the outage has failed a request."""
        idx = self.outages.index(t)
        for w in np.unique(idx[idx >= 0]):
            if w in self.t_open:
                continue
            if w < len(self.replayed) and self.replayed[w] is not None:
                self.t_open[int(w)] = float(self.outages.start[w]) + float(self.replayed[w])
                continue
            firsts = self.failures.setdefault(int(w), [])
            firsts.extend(np.sort(t[idx == w])[: self.lanes].tolist())
            firsts.sort()
            del firsts[self.lanes:]
            requests = np.sort((np.array(firsts)[:, None] + self.retries[None, :]).ravel())
            requests = requests[requests < self.outages.end[w]]
            if requests.size >= self.threshold:
                self.t_open[int(w)] = float(requests[self.threshold - 1]) + self.answer

    def span(self, w: int) -> tuple[float, float]:
        """(open, close) of the breaker during outage ``w`` (it must have opened); close is the closing
        probe's arrival at the ERP."""
        opened = self.t_open[w]
        return opened, self._close(opened, self.outages.end[w])

    def _close(self, opened, end):  # the first probe at the ERP after the outage's end
        return opened + self.lag + self.cooldown * np.maximum(np.ceil((end - opened - self.lag) / self.cooldown), 1)

    def open_keys(self) -> np.ndarray:
        """Outage indices whose breaker opened, in the order of :meth:`open_spans`."""
        return np.array(sorted(self.t_open), dtype=np.int64)

    def open_spans(self) -> tuple[np.ndarray, np.ndarray]:
        """(open, close) per outage whose breaker opened; close is the first probe after the outage."""
        keys = sorted(self.t_open)
        opened = np.array([self.t_open[k] for k in keys])
        ends = self.outages.end[keys] if keys else np.empty(0)
        return opened, self._close(opened, ends)

    def transitions(self) -> list[tuple[float, str]]:
        return [(float(t), s) for t_open, t_close in zip(*self.open_spans(), strict=True)
                for t, s in ((t_open, OPEN), (t_close, HALF_OPEN), (t_close, CLOSED))]
