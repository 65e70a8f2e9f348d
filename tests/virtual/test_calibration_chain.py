"""The joint fit of the chain's hops to the live end-to-end delays: a level on their processing, a spread on
their lognormal shape."""

from __future__ import annotations

import numpy as np
import pytest

from scenarios.spec import LatencySpec
from virtual.calibration import HopFit
from virtual.calibration_chain import ChainFit, fit_chain

NO_SERVICE = LatencySpec(mean=0.0)


def test_without_a_lognormal_hop_the_level_alone_gives_the_live_median():
    """An exponential hop of mean 1 s has a median of 0.69 s; postings that all took 1 s end to end (the live
    hops were not independent) scale its processing by about 1 / ln 2, and its shape stays."""
    hop = HopFit(1.0, "exponential", 0.5, 500, 0.69, 3.0)
    fit = fit_chain(np.full(500, 1.0), [hop], fixed=0.0, service=NO_SERVICE, speed=1.0)
    assert fit.level == pytest.approx(1 / np.log(2), rel=0.02)
    assert fit.spread == 1.0


def test_live_delays_wider_than_the_hop_widen_its_lognormal_shape():
    """A lognormal hop of mean 2 s fitted with sigma 0.5; the live chain's delays spread like sigma 0.8 around
    the same mean: the fit widens the shape by 1.6 (within a step of its grid), keeps the level, and matches
    the quartiles and the 90th percentile."""
    rng = np.random.default_rng(7)
    live = 1.0 + rng.lognormal(np.log(2.0) - 0.8**2 / 2, 0.8, 4000)  # 1 s fixed + the chain's time
    hop = HopFit(2.0, "lognormal", 0.5, 4000, 1.8, 4.0)
    fit = fit_chain(live, [hop], fixed=1.0, service=NO_SERVICE, speed=1.0)
    assert fit.spread == pytest.approx(1.6, abs=0.1)
    assert fit.level == pytest.approx(1.0, abs=0.1)
    assert fit.error < 0.03


def test_too_few_postings_or_an_unreachable_median_change_nothing():
    hop = HopFit(1.0, "exponential", 0.5, 500, 0.69, 3.0)
    assert fit_chain(np.full(5, 1.0), [hop], 0.0, NO_SERVICE, 1.0) == ChainFit()
    assert fit_chain(np.full(500, 1.0), [], 0.0, NO_SERVICE, 1.0) == ChainFit()
    # 100 s of fixed latency already exceed every live delay: no level reaches the median.
    assert fit_chain(np.full(500, 1.0), [hop], 100.0, NO_SERVICE, 1.0).identity
