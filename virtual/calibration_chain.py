"""The joint fit of a posting's chain of hops to the live run's end-to-end delays.

Hops fitted one by one and drawn independently do not add up to the live chain: in the live chain they are not
independent (a record that waited for the edge's flush travels in a batch that the next hops take at once), and
the median of a sum of skewed draws is not the sum of their medians. So the chain's hops are fitted again
together, against the delays of the live run's quiet postings (machine to the ERP's answer), with two factors:

- ``level`` on every chain hop's processing (its configured intervals stay as they are);
- ``spread`` on every lognormal chain hop's shape ``sigma``; the hop's mean stays.

For each spread on a grid the level is solved so that the sum of the hops' independent draws (with the ERP's
service and the fixed latencies, as the virtual engine adds them) has the live median exactly; the spread kept is
the one whose sum matches the live quartiles and 90th percentile best (log error). One factor alone matched the
median but not the body above it, where a flow's p50 lands when a fault delays part of its postings: the live
delays of a busy machine spread wider than the hops' own fits say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from scenarios.spec import LatencySpec
from twins.erp import draw_latency

MATCHED_QUANTILES = (0.25, 0.75, 0.9)  # besides the median, which is matched exactly
SPREADS = np.round(np.arange(0.5, 2.0001, 0.05), 2)
LEVELS = (0.1, 4.0)  # the range searched for the level
DRAWS = 20_000
MIN_POSTINGS = 20
MAX_SIGMA = 5.0


class ChainHop(Protocol):
    """What the fit reads of a hop (``virtual.calibration.HopFit``)."""

    mean: float
    distribution: str
    sigma: float
    interval: float


@dataclass(frozen=True)
class ChainFit:
    """Factors on the chain hops: ``level`` on their processing, ``spread`` on their lognormal sigma."""

    level: float = 1.0
    spread: float = 1.0
    error: float = 0.0  # root mean square log error at MATCHED_QUANTILES, after the fit

    @property
    def identity(self) -> bool:
        """True when the fit changes nothing."""
        return abs(self.level - 1.0) < 1e-3 and abs(self.spread - 1.0) < 1e-3


def spread_sigma(sigma: float, spread: float) -> float:
    """A lognormal hop's sigma under ``spread``."""
    return min(sigma * spread, MAX_SIGMA)


def fit_chain(live_delays: np.ndarray, chain: list[ChainHop], fixed: float, service: LatencySpec,
              speed: float) -> ChainFit:
    """The level and spread that make the chain's independent draws match ``live_delays`` (scenario seconds,
    machine to answer); no change when there are too few delays or the median is out of reach.

    ``fixed``: the scenario seconds every posting spends on configured latencies (WAN, broker, ERP network);
    ``service``: the ERP's service, drawn as the virtual engine draws it."""
    live = live_delays[np.isfinite(live_delays)]
    if live.size < MIN_POSTINGS or not chain:
        return ChainFit()
    quantiles = np.quantile(live, MATCHED_QUANTILES)
    median = float(np.median(live))
    base = fixed + draw_latency(service, np.random.default_rng(1), DRAWS)
    streams = [_stream(hop, np.random.default_rng(2 + i)) for i, hop in enumerate(chain)]
    spreads = SPREADS if any(h.distribution == "lognormal" for h in chain) else np.array([1.0])
    best: ChainFit | None = None
    for spread in spreads:
        intervals, processing = _chain_draws(chain, streams, float(spread), speed)
        level = _level_for_median(base + intervals, processing, median)
        if level is None:
            continue
        model = np.quantile(base + intervals + level * processing, MATCHED_QUANTILES)
        error = math.sqrt(float(np.mean(np.log(model / quantiles) ** 2)))
        if best is None or error < best.error - 1e-9:
            best = ChainFit(level, float(spread), error)
    return best or ChainFit()


def _stream(hop: ChainHop, rng: np.random.Generator) -> np.ndarray:
    """A hop's random stream, drawn once: standard normals for a lognormal hop (its sigma varies with the
    spread), draws of mean 1 otherwise."""
    if hop.distribution == "lognormal":
        return rng.standard_normal(DRAWS)
    return draw_latency(LatencySpec(mean=1.0, distribution=hop.distribution), rng, DRAWS)


def _chain_draws(chain: list[ChainHop], streams: list[np.ndarray], spread: float,
                 speed: float) -> tuple[np.ndarray, np.ndarray]:
    """Per draw, the scenario seconds the chain spends on its intervals and on its processing at level 1."""
    intervals, processing = np.zeros(DRAWS), np.zeros(DRAWS)
    for hop, stream in zip(chain, streams, strict=True):
        unit = stream
        if hop.distribution == "lognormal":
            sigma = spread_sigma(hop.sigma, spread)
            unit = np.exp(sigma * stream - sigma**2 / 2)  # mean 1, as draw_latency keeps it
        intervals += unit * hop.interval
        processing += unit * hop.mean * speed
    return intervals, processing


def _level_for_median(fixed_part: np.ndarray, processing: np.ndarray, target: float) -> float | None:
    """The level at which ``fixed_part + level * processing`` has median ``target`` (None out of reach)."""
    low, high = LEVELS
    if np.median(fixed_part + low * processing) >= target or np.median(fixed_part + high * processing) <= target:
        return None
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if np.median(fixed_part + mid * processing) < target else (low, mid)
    return (low + high) / 2
