"""The ERP posting server: closed-form FIFO equals Lindley's loop; rate limits and slow windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.generator import Windows
from scenarios.spec import ErpSpec, FaultSpec, LatencySpec
from twins.erp import ErpPostingServer, draw_latency, fifo_departures, service_time


def _lindley(arrivals, service, free_at: float) -> list[float]:
    out, last = [], free_at
    for a, s in zip(arrivals, service, strict=True):
        last = max(a, last) + s
        out.append(last)
    return out


_times = st.lists(st.floats(0, 1e4, allow_nan=False), min_size=0, max_size=60)
_services = st.lists(st.floats(0, 50, allow_nan=False), min_size=60, max_size=60)
_free = st.one_of(st.just(float("-inf")), st.floats(-100, 2e4, allow_nan=False))


@settings(max_examples=200, deadline=None)
@given(_times, _services, _free)
def test_closed_form_matches_lindley_loop(arrivals, services, free_at):
    a = np.sort(np.array(arrivals, dtype=float))
    s = np.array(services[: a.size], dtype=float)
    np.testing.assert_allclose(fifo_departures(a, s, free_at), _lindley(a, s, free_at), rtol=1e-9, atol=1e-6)


@settings(max_examples=100, deadline=None)
@given(_times, _services, st.integers(0, 60), _free)
def test_carrying_free_at_equals_one_call_on_the_concatenation(arrivals, services, cut, free_at):
    a = np.sort(np.array(arrivals, dtype=float))
    s = np.array(services[: a.size], dtype=float)
    cut = min(cut, a.size)
    first = fifo_departures(a[:cut], s[:cut], free_at)
    carried = float(first[-1]) if first.size else free_at
    second = fifo_departures(a[cut:], s[cut:], carried)
    np.testing.assert_allclose(np.concatenate([first, second]), fifo_departures(a, s, free_at),
                               rtol=1e-9, atol=1e-6)


def test_departures_never_precede_arrival_plus_service():
    rng = np.random.default_rng(0)
    a = np.sort(rng.uniform(0, 100, 500))
    s = rng.exponential(0.5, 500)
    d = fifo_departures(a, s, float("-inf"))
    assert np.all(d >= a + s - 1e-9)
    assert np.all(np.diff(d) >= s[1:] - 1e-9)  # one server: consecutive departures a service apart


def test_known_small_queue():
    d = fifo_departures(np.array([0.0, 1.0, 1.5, 10.0]), np.array([2.0, 2.0, 2.0, 1.0]), 5.0)
    assert d.tolist() == [7.0, 9.0, 11.0, 12.0]
    assert fifo_departures(np.empty(0), np.empty(0), 0.0).size == 0


def _server(rate_limit=None, slow: Windows | None = None, mean: float = 0.05, dist: str = "exponential"):
    spec = ErpSpec(service=LatencySpec(mean=mean, distribution=dist), rate_limit=rate_limit)
    return ErpPostingServer(spec, slow or Windows.of([]), np.random.default_rng(1))


def test_rate_limit_spaces_postings_at_least_one_over_the_rate():
    server = _server(rate_limit=20.0, mean=0.001)
    arrivals = np.zeros(200)  # a burst: all at once
    d = server.serve(arrivals)
    assert np.all(np.diff(d) >= 1 / 20 - 1e-12)
    assert d[-1] == pytest.approx(200 / 20, rel=0.01)


def test_free_at_carries_across_serve_calls():
    server = _server(mean=1.0, dist="constant")
    first = server.serve(np.array([0.0, 0.0, 0.0]))
    assert first.tolist() == [1.0, 2.0, 3.0]
    second = server.serve(np.array([2.5, 10.0]))
    assert second.tolist() == [4.0, 11.0]
    assert server.served == 5 and server.free_at == 11.0


def test_slow_window_multiplies_service_of_arrivals_inside_it():
    slow = Windows.of([FaultSpec(kind="erp_slow", at=100, duration=100, factor=5)], "factor")
    server = _server(mean=2.0, dist="constant", slow=slow)
    d = server.serve(np.array([50.0, 150.0, 250.0]))
    assert d.tolist() == [52.0, 160.0, 252.0]


@pytest.mark.parametrize("dist", ["exponential", "lognormal", "constant"])
def test_latency_draws_keep_the_mean(dist):
    spec = LatencySpec(mean=0.2, distribution=dist, sigma=0.5)
    draws = draw_latency(spec, np.random.default_rng(3), 100_000)
    assert draws.mean() == pytest.approx(0.2, rel=0.02)
    assert np.all(draws >= 0)


def test_zero_latency_is_zero():
    assert draw_latency(LatencySpec(mean=0), np.random.default_rng(0), 5).tolist() == [0.0] * 5


def test_service_time_of_a_batch_is_the_sum_of_its_draws():
    spec = LatencySpec(mean=0.2, distribution="lognormal", sigma=0.5)
    expected = draw_latency(spec, np.random.default_rng(5), 7).sum()
    assert service_time(spec, np.random.default_rng(5), 7) == pytest.approx(expected)
    assert service_time(LatencySpec(mean=0.3, distribution="constant"), np.random.default_rng(0), 4) == 1.2
    assert service_time(spec, np.random.default_rng(0), 0) == 0.0
