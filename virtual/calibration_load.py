"""How busy the live chain was over the run: the load profile the virtual engine replays.

The chain's hops take longer while the machine is busier, and on a shared machine that changes from one wall
second to the next: a live run at speed 60 of 20 scenario minutes lasts 20 wall seconds, so a few busy seconds
move a flow's median by more than the fidelity bar. :func:`load_profile` measures, per bin of one wall second
(``speed`` scenario seconds), the median of the quiet postings' time in the chain (their delay beyond the fixed
latencies and the ERP's mean service) against the whole run's; :func:`steady_delays` takes that factor out of
each posting's delay, so the hops are fitted to the chain as it is at its typical load, and the virtual engine
puts the factor back where the live run had it (``virtual.load_replay``).
"""

from __future__ import annotations

import numpy as np

from scenarios.spec import LoadReplaySpec
from virtual.load_replay import load_factor

WALL_BIN = 1.0  # wall seconds per bin
MIN_BIN_POSTINGS = 10  # fewer quiet postings than this in a bin: factor 1 (too few to tell)
FACTOR_RANGE = (0.2, 5.0)
MIN_EFFECT = 0.01  # factors all closer to 1 than this: no profile


def load_profile(created: np.ndarray, delays: np.ndarray, base: float, speed: float) -> tuple[float, list[float]]:
    """The bin width (scenario seconds) and, per bin from scenario time 0, the factor on the chain's time there.

    ``created`` and ``delays`` are the quiet postings' creation times and end-to-end delays, ``base`` the part of
    a delay that does not depend on the load. Each bin's factor is its median chain time against the run's,
    shrunk towards 1 by how much of its spread across the bins sampling noise explains (a random-effects
    estimate): a steady run gives no profile, and a bin of few postings moves little. Empty when the bins
    differ by no more than their noise."""
    width = WALL_BIN * speed
    ok = np.isfinite(created) & np.isfinite(delays) & (created >= 0) & (delays > base)
    if ok.sum() < MIN_BIN_POSTINGS:
        return width, []
    log_chain = np.log(delays[ok] - base)
    bins = np.floor(created[ok] / width).astype(np.int64)
    typical = float(np.median(log_chain))
    shifts, noise, used = [], [], []
    for b in np.unique(bins):
        inside = log_chain[bins == b]
        if inside.size >= MIN_BIN_POSTINGS:
            q25, q75 = np.quantile(inside, [0.25, 0.75])
            spread = (q75 - q25) / 1.349  # a robust standard deviation
            shifts.append(float(np.median(inside)) - typical)
            noise.append((1.2533 * spread) ** 2 / inside.size)  # the variance of a median
            used.append(int(b))
    if len(used) < 2:
        return width, []
    shifts_a, noise_a = np.asarray(shifts), np.asarray(noise)
    between = max(float(np.var(shifts_a)) - float(noise_a.mean()), 0.0)
    factors = np.ones(int(bins.max()) + 1)
    factors[used] = np.exp(shifts_a * between / (between + noise_a))
    factors = np.clip(factors, *FACTOR_RANGE)
    if np.all(np.abs(factors - 1.0) < MIN_EFFECT):
        return width, []
    return width, [round(float(f), 4) for f in factors]


def steady_delays(created: np.ndarray, delays: np.ndarray, base: float, width: float,
                  factors: list[float]) -> np.ndarray:
    """The delays with the load profile taken out of their time in the chain."""
    if not factors:
        return delays
    return base + (delays - base) / load_factor(LoadReplaySpec(bin=width, factors=factors), created)
