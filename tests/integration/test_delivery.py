"""Sans-IO delivery core: backoff arithmetic, breaker transitions, and the actions Delivery returns."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from integration.delivery import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    CircuitBreaker,
    DeadLetter,
    Delivery,
    Done,
    Post,
    RetryAt,
    RetryPolicy,
    Suppress,
)
from kernel.trace import REASON_RETRIES_EXHAUSTED


# --------------------------------------------------------------------------------------- RetryPolicy
def test_delays_grow_exponentially_and_are_capped():
    policy = RetryPolicy(initial=1.0, multiplier=2.0, max_delay=30.0, jitter=0.0)
    assert [policy.delay(a, 0.0) for a in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert policy.delay(10_000, 0.5) == 30.0  # no overflow for huge attempt numbers


def test_jitter_stays_within_its_share_below_the_nominal_delay():
    policy = RetryPolicy(initial=10.0, multiplier=3.0, max_delay=1000.0, jitter=0.2)
    assert policy.delay(2, 0.0) == pytest.approx(30.0)
    assert policy.delay(2, 0.999999) == pytest.approx(24.0, abs=1e-4)
    u = np.random.default_rng(0).random(10_000)
    d = policy.delay(np.full(10_000, 3), u)
    assert d.min() >= 90.0 * 0.8 and d.max() <= 90.0
    assert d.mean() == pytest.approx(90.0 * 0.9, rel=0.01)


def test_array_form_equals_scalar_form():
    policy = RetryPolicy(initial=0.5, multiplier=1.7, max_delay=60.0, jitter=0.35)
    rng = np.random.default_rng(1)
    attempts = rng.integers(1, 25, 500)
    u = rng.random(500)
    vector = policy.delay(attempts, u)
    assert isinstance(vector, np.ndarray)
    assert vector.tolist() == [policy.delay(int(a), float(x)) for a, x in zip(attempts, u, strict=True)]
    assert isinstance(policy.delay(3, 0.1), float)


def test_gives_up_after_max_attempts_counting_the_first_try():
    policy = RetryPolicy(max_attempts=3)
    assert [policy.gives_up_after(a) for a in (1, 2, 3, 4)] == [False, False, True, True]


# ------------------------------------------------------------------------------------ CircuitBreaker
def test_breaker_opens_after_threshold_consecutive_failures():
    breaker = CircuitBreaker(failure_threshold=3, cooldown=30.0)
    for t in (1.0, 2.0):
        breaker.record_failure(t)
        assert breaker.state == CLOSED and breaker.admit(t)
    breaker.record_failure(3.0)
    assert breaker.state == OPEN
    assert not breaker.admit(10.0)
    assert breaker.next_probe_at() == 33.0
    assert breaker.transitions == [(3.0, OPEN)]


def test_a_success_resets_the_consecutive_count():
    breaker = CircuitBreaker(failure_threshold=3, cooldown=30.0)
    breaker.record_failure(1.0)
    breaker.record_failure(2.0)
    breaker.record_success(3.0)
    breaker.record_failure(4.0)
    breaker.record_failure(5.0)
    assert breaker.state == CLOSED
    assert breaker.transitions == []


def test_half_open_after_cooldown_then_closed_on_success():
    breaker = CircuitBreaker(failure_threshold=1, cooldown=10.0)
    breaker.record_failure(0.0)
    assert not breaker.admit(9.999)
    assert breaker.admit(10.0)
    assert breaker.state == HALF_OPEN
    breaker.record_success(10.5)
    assert breaker.state == CLOSED and breaker.failures == 0
    assert breaker.transitions == [(0.0, OPEN), (10.0, HALF_OPEN), (10.5, CLOSED)]
    assert breaker.next_probe_at() == float("-inf")


def test_failed_probe_reopens_with_a_fresh_cooldown():
    breaker = CircuitBreaker(failure_threshold=5, cooldown=10.0)
    for t in range(5):
        breaker.record_failure(float(t))
    assert breaker.admit(14.0) and breaker.state == HALF_OPEN
    breaker.record_failure(14.5)  # one failure is enough in half-open
    assert breaker.state == OPEN
    assert not breaker.admit(20.0)
    assert breaker.next_probe_at() == 24.0  # on the grid of its opening (4 + k * 10), whatever it took
    assert [s for _, s in breaker.transitions] == [OPEN, HALF_OPEN, OPEN]


def test_half_open_admits_one_probe_until_its_verdict():
    breaker = CircuitBreaker(failure_threshold=1, cooldown=10.0)
    breaker.record_failure(0.0)
    assert breaker.admit(10.0) and breaker.probing  # the probe
    assert not breaker.admit(10.1) and not breaker.admit(10.2)  # the others wait for its verdict
    breaker.release_probe()  # it ended without one (e.g. a 429)
    assert breaker.state == HALF_OPEN and breaker.admit(10.3)  # the next request probes
    breaker.record_success(10.4)
    assert breaker.state == CLOSED and breaker.admit(10.5) and breaker.admit(10.5)  # closed: no limit


def test_failed_probe_refuses_everyone_until_the_next_cooldown():
    breaker = CircuitBreaker(failure_threshold=1, cooldown=10.0)
    breaker.record_failure(0.0)
    assert breaker.admit(10.0)
    breaker.record_failure(11.0)
    assert breaker.state == OPEN and not breaker.probing
    assert not breaker.admit(19.9)
    assert breaker.admit(20.0) and not breaker.admit(20.0)


def test_policy_and_breaker_come_from_the_scenario():
    from scenarios.spec import BreakerSpec, RetrySpec

    spec = RetrySpec(initial=2.0, multiplier=3.0, max_delay=90.0, max_attempts=7, jitter=0.1)
    assert RetryPolicy.from_spec(spec) == RetryPolicy(2.0, 3.0, 90.0, 7, 0.1)
    breaker = CircuitBreaker.from_spec(BreakerSpec(failure_threshold=4, cooldown=12.0))
    assert (breaker.failure_threshold, breaker.cooldown, breaker.state) == (4, 12.0, CLOSED)


# ------------------------------------------------------------------------------------------ Delivery
def _delivery(idempotency: bool = True, max_attempts: int = 4, threshold: int = 3, cooldown: float = 30.0):
    policy = RetryPolicy(initial=1.0, multiplier=2.0, max_delay=60.0, max_attempts=max_attempts, jitter=0.0)
    return Delivery(policy, CircuitBreaker(threshold, cooldown), set(), idempotency)


def test_first_offer_posts_and_success_records_the_key():
    d = _delivery()
    assert d.offer("k1", 1, 0.0) == Post("k1", 1)
    assert d.succeeded("k1", 1, 0.1) == Done("k1", 1)
    assert "k1" in d.processed


def test_processed_key_is_suppressed_with_idempotency_on():
    d = _delivery(idempotency=True)
    d.succeeded("k1", 1, 0.1)
    assert d.offer("k1", 1, 5.0) == Suppress("k1")
    assert d.offer("k2", 1, 5.0) == Post("k2", 1)


def test_processed_key_is_posted_again_with_idempotency_off():
    d = _delivery(idempotency=False)
    d.succeeded("k1", 1, 0.1)
    assert "k1" not in d.processed
    d.processed.add("k1")  # even a key someone else stored does not stop the copy
    assert d.offer("k1", 1, 5.0) == Post("k1", 1)


def test_failure_schedules_a_backoff_retry():
    d = _delivery()
    assert d.failed("k", 1, 100.0, u=0.0) == RetryAt("k", 2, 101.0)
    assert d.failed("k", 2, 101.0, u=0.0) == RetryAt("k", 3, 103.0)


def test_dead_letter_after_max_attempts():
    d = _delivery(max_attempts=3, threshold=100)
    assert isinstance(d.failed("k", 2, 0.0, u=0.0), RetryAt)
    assert d.failed("k", 3, 0.0, u=0.0) == DeadLetter("k", 3, REASON_RETRIES_EXHAUSTED)


def test_permanent_failure_dead_letters_at_once_without_tripping_the_breaker():
    d = _delivery(threshold=1)
    action = d.failed("k", 1, 0.0, u=0.0, permanent_reason="unmapped_item")
    assert action == DeadLetter("k", 1, "unmapped_item")
    assert d.breaker.state == CLOSED


def test_retry_after_is_respected_and_does_not_trip_the_breaker():
    d = _delivery(threshold=1)
    action = d.failed("k", 1, 50.0, u=0.0, retry_after=20.0)
    assert action == RetryAt("k", 2, 70.0)
    assert d.breaker.state == CLOSED and d.breaker.failures == 0
    # A backoff longer than Retry-After wins.
    assert d.failed("k", 3, 50.0, u=0.0, retry_after=2.0) == RetryAt("k", 4, 50.0 + 4.0)


def test_open_breaker_defers_offers_without_spending_attempts():
    d = _delivery(threshold=2, cooldown=30.0)
    d.failed("a", 1, 10.0, u=0.0)
    d.failed("b", 1, 11.0, u=0.0)
    assert d.breaker.state == OPEN
    action = d.offer("c", 1, 12.0, u=0.5)
    assert action == RetryAt("c", 1, 41.0 + 0.5)  # probe at open + cooldown, plus jittered initial
    assert d.offer("c", 1, 41.0) == Post("c", 1)  # cooldown over: half-open lets the probe through
    assert d.breaker.state == HALF_OPEN
    d.succeeded("c", 1, 41.2)
    assert d.breaker.state == CLOSED


def test_lanes_sharing_a_half_open_breaker_send_one_probe():
    """Two delivery machines over one breaker (the worker's lanes): one probes, the other waits for it."""
    breaker = CircuitBreaker(failure_threshold=1, cooldown=30.0)
    policy = RetryPolicy(initial=1.0, jitter=0.0)
    a, b = Delivery(policy, breaker, set()), Delivery(policy, breaker, set())
    a.failed("x", 1, 0.0, u=0.0)
    assert a.offer("a1", 1, 30.0) == Post("a1", 1) and a.holds_probe
    assert b.offer("b1", 1, 30.0, u=0.5) == RetryAt("b1", 1, 31.0)  # look again about `initial` later
    a.failed("a1", 1, 30.5, u=0.0, retry_after=2.0)  # busy: alive, no verdict, the probe is free again
    assert breaker.state == HALF_OPEN and not a.holds_probe
    assert b.offer("b1", 1, 31.0) == Post("b1", 1) and b.holds_probe
    b.release()  # answer lost, the ledger was read instead: no verdict either
    assert a.offer("a1", 2, 32.0) == Post("a1", 2)
    a.succeeded("a1", 2, 32.1)
    assert breaker.state == CLOSED and b.offer("b2", 1, 32.2) == Post("b2", 1) and not b.holds_probe


def test_whole_outage_cycle_drives_the_breaker_through_its_states():
    """Drive the state machine against a target that is down in [0, 100)."""
    d = _delivery(max_attempts=50, threshold=3, cooldown=20.0)
    pending = [(f"m{i}", 1, float(i)) for i in range(5)]
    posted: dict[str, float] = {}
    while pending:
        pending.sort(key=lambda p: p[2])
        key, attempt, now = pending.pop(0)
        action = d.offer(key, attempt, now, u=0.3)
        if isinstance(action, RetryAt):
            pending.append((key, action.attempt, action.at))
            continue
        assert isinstance(action, Post)
        result = d.failed(key, attempt, now, u=0.3) if now < 100.0 else d.succeeded(key, attempt, now)
        if isinstance(result, RetryAt):
            pending.append((key, result.attempt, result.at))
        else:
            assert isinstance(result, Done)
            posted[key] = now
    assert sorted(posted) == ["m0", "m1", "m2", "m3", "m4"]
    assert all(t >= 100.0 for t in posted.values())
    states = [s for _, s in d.breaker.transitions]
    assert states[0] == OPEN and states[-1] == CLOSED
    assert HALF_OPEN in states
    assert d.breaker.state == CLOSED


@given(
    processed=st.sets(st.sampled_from("abcdef")),
    keys=st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=8, unique=True),
    idempotency=st.booleans(),
    now=st.sampled_from([0.0, 10.0, 40.0]),
)
def test_offer_many_decides_as_offer_does_key_by_key(processed, keys, idempotency, now):
    one, many = _delivery(idempotency, threshold=1), _delivery(idempotency, threshold=1)
    for d in (one, many):
        d.processed.update(processed)
        d.failed("z", 1, 5.0, u=0.5)  # breaker open from 5.0 until 35.0
    actions = [one.offer(k, 1, now, 0.5) for k in keys]
    suppressed, action = many.offer_many(keys, 1, now, 0.5)
    assert suppressed == [a.key for a in actions if isinstance(a, Suppress)]
    others = [a for a in actions if not isinstance(a, Suppress)]
    assert action == (others[0] if others else None)
    if one.breaker.state == HALF_OPEN and others:  # key by key, the first is the probe and the rest wait for it
        assert isinstance(others[0], Post) and all(isinstance(a, RetryAt) for a in others[1:])
    else:
        assert all(type(a) is type(others[0]) for a in others)
    assert many.breaker.state == one.breaker.state


def test_failed_probes_keep_the_breakers_cadence_whatever_the_jitter_and_the_answer_took():
    """A probe that went out a little late and took long to fail does not push the next one back: the
    probes stay on the grid opened_at + k * cooldown (a live run's round trips count speed-fold)."""
    breaker = CircuitBreaker(failure_threshold=1, cooldown=30.0)
    breaker.record_failure(0.0)
    probes = []
    for _ in range(5):
        t = breaker.next_probe_at() + 1.5  # a waiting request's jitter
        assert breaker.admit(t)
        probes.append(t)
        breaker.record_failure(t + 4.0)  # a slow failing answer
    assert probes == [30.0 * k + 1.5 for k in range(1, 6)]
    assert breaker.admit(200.0) and breaker.opened_at == 150.0  # a late probe: the grid point before it
    breaker.record_failure(201.0)
    assert breaker.next_probe_at() == 210.0
