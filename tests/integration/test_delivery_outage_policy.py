"""The retries_exhausted policy under a circuit breaker, on the sans-IO core of the live workers:
waiting for an open breaker is not an attempt; the half-open probes are calls and count as attempts of
the message that carries them. An outage therefore costs the waiting messages about one attempt per
cooldown between them, and dead-letters them only when it outlasts ``max_attempts`` such shares
(integration/delivery.py, README design notes). During an outage the breaker's cooldown paces the
retries, not the grown backoff, and a closing breaker makes every waiting retry due at once, so the
recovery after an outage is bounded by one cooldown whatever the outage's length."""

from __future__ import annotations

import heapq
import random

from integration.delivery import CircuitBreaker, DeadLetter, Delivery, Done, Post, RetryAt, RetryPolicy


def _simulate(messages: int, outage_end: float, threshold: int, max_attempts: int = 6, seed: int = 1,
              max_delay: float = 60.0, wake_on_close: bool = False,
              done_at: dict[str, float] | None = None) -> tuple[dict[str, str], dict[str, int]]:
    """Messages offered at t = 0..messages-1 to a target that fails every call before ``outage_end``.
    ``wake_on_close``: a closing breaker makes every waiting retry due at once (as the live lanes do)."""
    rng = random.Random(seed)
    policy = RetryPolicy(initial=1.0, multiplier=2.0, max_delay=max_delay, max_attempts=max_attempts)
    delivery = Delivery(policy, CircuitBreaker(threshold, 30.0), set())
    timers = [(float(i), f"m{i}", 1) for i in range(messages)]
    heapq.heapify(timers)
    ends: dict[str, str] = {}
    calls: dict[str, int] = {}
    closings = 0
    while timers:
        now, key, attempt = heapq.heappop(timers)
        if wake_on_close and delivery.breaker.closings > closings:
            closings = delivery.breaker.closings
            timers = [(now, k, a) for _, k, a in timers]
            heapq.heapify(timers)
        action = delivery.offer(key, attempt, now, rng.random())
        if isinstance(action, RetryAt):  # held by the breaker: same attempt number
            assert action.attempt == attempt
            heapq.heappush(timers, (action.at, key, action.attempt))
            continue
        assert isinstance(action, Post)
        calls[key] = calls.get(key, 0) + 1
        result = (delivery.succeeded(key, attempt, now) if now >= outage_end
                  else delivery.failed(key, attempt, now, rng.random()))
        if isinstance(result, RetryAt):
            heapq.heappush(timers, (result.at, key, result.attempt))
        else:
            assert isinstance(result, (Done, DeadLetter))
            ends[key] = "delivered" if isinstance(result, Done) else result.reason
            if done_at is not None:
                done_at[key] = now
    return ends, calls


def test_with_the_breaker_an_outage_charges_only_the_probes_to_the_waiting_messages():
    ends, calls = _simulate(messages=50, outage_end=1800.0, threshold=3, max_attempts=10)
    assert set(ends.values()) == {"delivered"} and len(ends) == 50
    # One failed probe per 30 s cooldown over the half hour, spread over the 50 waiting messages (plus
    # the calls before the breaker opened and the 50 successful ones).
    failed = sum(calls.values()) - 50
    assert 3 + 55 <= failed <= 3 + 62


def test_with_the_breaker_an_outage_longer_than_the_attempts_cover_dead_letters():
    ends, _ = _simulate(messages=5, outage_end=3 * 3600.0, threshold=3)
    assert set(ends.values()) == {"retries_exhausted"}  # 360 probes over 5 messages of 6 attempts each


def test_without_the_breaker_every_message_spends_its_attempts_on_the_outage():
    ends, calls = _simulate(messages=50, outage_end=3600.0, threshold=10**9)
    assert set(ends.values()) == {"retries_exhausted"}
    assert set(calls.values()) == {6}


def test_a_failed_probe_retries_at_the_next_probe_not_after_its_grown_backoff():
    policy = RetryPolicy(initial=2.0, multiplier=2.0, max_delay=120.0, max_attempts=30, jitter=0.0)
    delivery = Delivery(policy, CircuitBreaker(1, 30.0), set())
    assert delivery.failed("k", 9, 100.0, u=0.0) == RetryAt("k", 10, 130.0)  # backoff alone: 100 + 120
    closed = Delivery(policy, CircuitBreaker(5, 30.0), set())
    assert closed.failed("k", 9, 100.0, u=0.0) == RetryAt("k", 10, 220.0)  # breaker still closed: backoff
    # A 429's Retry-After is never undercut by the breaker's pace.
    assert delivery.failed("k", 2, 100.0, u=0.0, retry_after=50.0) == RetryAt("k", 3, 150.0)


def test_the_breaker_counts_its_closings_not_successes_while_closed():
    breaker = CircuitBreaker(2, 30.0)
    breaker.record_success(0.0)
    assert breaker.closings == 0
    breaker.record_failure(1.0)
    breaker.record_failure(2.0)
    assert breaker.admit(32.0) and breaker.state == "half_open"
    breaker.record_success(33.0)
    assert breaker.closings == 1 and breaker.state == "closed"


def test_recovery_after_an_outage_is_bounded_by_one_cooldown_whatever_its_length():
    for outage_end in (300.0, 1800.0):  # four messages share the probes: their attempts grow past 10
        done_at: dict[str, float] = {}
        ends, _ = _simulate(messages=4, outage_end=outage_end, threshold=3, max_attempts=30, max_delay=600.0,
                            wake_on_close=True, done_at=done_at)
        assert set(ends.values()) == {"delivered"}
        recovery = max(done_at.values()) - outage_end
        assert 0.0 <= recovery <= 30.0 + 2.0, recovery  # the first probe after the end closes, all go at once
