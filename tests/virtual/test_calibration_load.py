"""The live chain's load over the run: a factor per wall second, shrunk towards 1 by its sampling noise."""

from __future__ import annotations

import numpy as np
import pytest

from virtual.calibration_load import load_profile, steady_delays

SPEED = 60.0
BASE = 0.5  # scenario seconds of every delay that do not depend on the load


def postings(n: int = 6000, busy_bin: int | None = None, factor: float = 1.0, seed: int = 3):
    """Quiet postings over 20 scenario minutes whose chain time is lognormal around 3 s; those created in
    ``busy_bin`` (one wall second at speed 60) took ``factor`` times as long."""
    rng = np.random.default_rng(seed)
    created = np.sort(rng.uniform(0, 1200, n))
    chain = rng.lognormal(np.log(3.0), 0.5, n)
    if busy_bin is not None:
        chain[np.floor(created / SPEED) == busy_bin] *= factor
    return created, BASE + chain


def test_a_steady_run_has_no_profile():
    created, delays = postings()
    width, factors = load_profile(created, delays, BASE, SPEED)
    assert width == SPEED
    assert factors == []


def test_a_busy_second_gets_its_factor_and_the_steady_delays_take_it_out():
    created, delays = postings(busy_bin=7, factor=2.0)
    width, factors = load_profile(created, delays, BASE, SPEED)
    assert factors[7] == pytest.approx(2.0, rel=0.1)
    others = np.delete(np.asarray(factors), 7)
    assert np.all(np.abs(others - 1.0) < 0.1)
    steady = steady_delays(created, delays, BASE, width, factors)
    in_busy = np.floor(created / SPEED) == 7
    assert np.median(steady[in_busy] - BASE) == pytest.approx(np.median(steady[~in_busy] - BASE), rel=0.1)


def test_a_bin_of_few_postings_keeps_factor_one():
    created, delays = postings(busy_bin=7, factor=2.0)
    sparse = ~((np.floor(created / SPEED) == 3) & (np.arange(created.size) % 50 != 0))  # bin 3: a handful left
    _, factors = load_profile(created[sparse], delays[sparse], BASE, SPEED)
    assert factors[3] == 1.0
    assert factors[7] == pytest.approx(2.0, rel=0.1)
