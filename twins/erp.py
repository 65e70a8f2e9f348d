"""The ERP twin's posting server, vectorised: one FIFO server with a service-time distribution,
an optional API rate limit, slow windows, and a ledger that does not de-duplicate.

FIFO departures come from Lindley's recursion ``d_i = max(a_i, d_{i-1}) + s_i``, evaluated for a
whole sorted batch at once through its closed form
``d_i = S_i + max(free_at, max_{j<=i}(a_j - S_{j-1}))`` with ``S`` the running sum of service times.
"""

from __future__ import annotations

import numpy as np

from scenarios.generator import Windows
from scenarios.spec import ErpSpec, LatencySpec


def draw_latency(spec: LatencySpec, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` draws of a latency distribution with the spec's mean."""
    if spec.mean == 0 or n == 0:
        return np.zeros(n)
    if spec.distribution == "constant":
        return np.full(n, spec.mean)
    if spec.distribution == "lognormal":
        mu = np.log(spec.mean) - spec.sigma**2 / 2  # keeps the mean at spec.mean
        return rng.lognormal(mu, spec.sigma, n)
    return rng.exponential(spec.mean, n)


def service_time(spec: LatencySpec, rng: np.random.Generator, n: int = 1) -> float:
    """Total service time of ``n`` requests in scenario seconds: the sum of ``n`` independent draws of
    :func:`draw_latency` (the live ERP service serves a batch of postings as ``n`` postings)."""
    return float(draw_latency(spec, rng, max(n, 0)).sum())


def fifo_departures(arrivals: np.ndarray, service: np.ndarray, free_at: float) -> np.ndarray:
    """Departure times of a single FIFO server for sorted ``arrivals`` (closed-form Lindley)."""
    if arrivals.size == 0:
        return np.empty(0)
    total = np.cumsum(service)
    start_bound = np.maximum.accumulate(arrivals - (total - service))
    return total + np.maximum(start_bound, free_at)


class ErpPostingServer:
    """One ERP system's posting API as a queue. ``serve`` must see arrivals in time order overall."""

    def __init__(self, spec: ErpSpec, slow: Windows, rng: np.random.Generator):
        self.spec = spec
        self.slow = slow
        self.rng = rng
        self.free_at = float("-inf")
        self.served = 0

    def serve(self, arrivals: np.ndarray) -> np.ndarray:
        """Departure (posting) times for sorted arrival times at the ERP."""
        service = draw_latency(self.spec.service, self.rng, arrivals.size)
        service *= self.slow.value_at(arrivals, 1.0)
        if self.spec.rate_limit:
            # The hub paces calls to the API limit instead of collecting 429s: a floor on spacing.
            service = np.maximum(service, 1.0 / self.spec.rate_limit)
        departures = fifo_departures(arrivals, service, self.free_at)
        if departures.size:
            self.free_at = float(departures[-1])
        self.served += arrivals.size
        return departures
