"""The retries_exhausted policy under a circuit breaker, on the sans-IO core of the live workers:
waiting for an open breaker is not an attempt; the half-open probes are calls and count as attempts of
the message that carries them. An outage therefore costs the waiting messages about one attempt per
cooldown between them, and dead-letters them only when it outlasts ``max_attempts`` such shares
(integration/delivery.py, README design notes)."""

from __future__ import annotations

import heapq
import random

from integration.delivery import CircuitBreaker, DeadLetter, Delivery, Done, Post, RetryAt, RetryPolicy


def _simulate(messages: int, outage_end: float, threshold: int, max_attempts: int = 6,
              seed: int = 1) -> tuple[dict[str, str], dict[str, int]]:
    """Messages offered at t = 0..messages-1 to a target that fails every call before ``outage_end``."""
    rng = random.Random(seed)
    policy = RetryPolicy(initial=1.0, multiplier=2.0, max_delay=60.0, max_attempts=max_attempts)
    delivery = Delivery(policy, CircuitBreaker(threshold, 30.0), set())
    timers = [(float(i), f"m{i}", 1) for i in range(messages)]
    heapq.heapify(timers)
    ends: dict[str, str] = {}
    calls: dict[str, int] = {}
    while timers:
        now, key, attempt = heapq.heappop(timers)
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
