"""Sans-IO delivery: idempotency, retries with backoff and jitter, circuit breaker, dead letters.

Nothing here does I/O or reads a clock. The caller feeds inputs and ``now`` and carries out the
returned actions: the virtual-time engine under SimPy/numpy, the live workers under asyncio. Both
therefore share one set of retry and idempotency semantics.

The arithmetic of :class:`RetryPolicy` works on numpy arrays as well as on scalars, which is how
the vectorised engine applies exactly the same backoff to a million transactions at once.

Retries under the breaker (the policy both engines follow): waiting for an open breaker is not an
attempt (:meth:`Delivery.offer` answers ``RetryAt`` with the same attempt number), while a half-open
probe is a real call and counts as an attempt of the message carrying it. ``max_attempts`` bounds how
often a message is tried against a failing target, not how long an outage may last: with the breaker
on, an outage costs the waiting messages about one attempt per cooldown between them, so
``retries_exhausted`` appears only when an outage outlasts those shares or a target fails calls
without the breaker opening. The virtual hub charges each failed probe to a waiting message drawn at
random (``virtual/hub.py``).

During an outage the breaker, not the backoff, paces the retries: a failed attempt that leaves the
breaker open retries when the breaker next admits a probe (after its cooldown), however long that
message's own backoff has grown; the backoff paces failures that leave the breaker closed (a flaky
target) and never undercuts a 429's Retry-After. When a successful probe closes the breaker, every
message waiting on that target is due at once (:attr:`CircuitBreaker.closings` counts the closings, so
a caller sleeping on a retry can wake at the next one; the live workers do, and keep per-key order
because a lane retries its head batch first). Recovery after an outage is therefore the wait for the
first probe after it (at most one cooldown) plus the drain, whatever the outage's length.

The probes keep the configured cadence: a breaker that opened at ``t`` is due to probe at
``t + k * cooldown``, and a failed probe re-opens it as of its own grid point, not as of its answer.
So the waiting requests' jitter (it spreads which message carries the probe) and the probe's round
trip do not accumulate over an outage: in a live run at speed S a round trip counts S times in
scenario time, and re-opening at the answer would add it to every cooldown. The virtual hub models
the same grid (``virtual/hub.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from kernel.trace import REASON_RETRIES_EXHAUSTED

if TYPE_CHECKING:
    from scenarios.spec import BreakerSpec, RetrySpec


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with a cap and jitter; ``max_attempts`` counts the first try."""

    initial: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 300.0
    max_attempts: int = 20
    jitter: float = 0.2

    def delay(self, attempt, u):
        """Wait before attempt ``attempt + 1`` after ``attempt`` failed; ``u`` is uniform in [0, 1).

        Works element-wise on numpy arrays. The jittered share of the delay is spread over
        ``[0, jitter]`` below the nominal value, so retries of one outage do not stampede together.
        """
        exponent = np.minimum(np.asarray(attempt, dtype=float) - 1.0, 60.0)
        nominal = np.minimum(self.initial * self.multiplier**exponent, self.max_delay)
        result = nominal * (1.0 - self.jitter * np.asarray(u, dtype=float))
        return float(result) if np.ndim(result) == 0 else result

    def gives_up_after(self, attempt: int) -> bool:
        """True when ``attempt`` failed attempts exhaust the policy."""
        return attempt >= self.max_attempts

    @classmethod
    def from_spec(cls, spec: RetrySpec) -> RetryPolicy:
        """The policy of a scenario's ``landscape.integration.retry`` (scenario seconds)."""
        return cls(spec.initial, spec.multiplier, spec.max_delay, spec.max_attempts, spec.jitter)


CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass
class CircuitBreaker:
    """Per-target breaker: opens after ``failure_threshold`` consecutive failures, half-opens after
    ``cooldown``; half-open admits one request at a time (the probe), one successful probe closes it,
    a failed probe re-opens it with a fresh cooldown.

    Every transition happens in here; callers only ask :meth:`admit` before a request and report its
    verdict (:meth:`record_success`, :meth:`record_failure`) or that it ended without one
    (:meth:`release_probe`).
    """

    failure_threshold: int = 5
    cooldown: float = 30.0
    state: str = CLOSED
    failures: int = 0
    opened_at: float = float("-inf")
    probing: bool = False  # half-open with the probe out: the other requests wait for its verdict
    probe_at: float = float("-inf")  # when the current half-open probe was admitted
    closings: int = 0  # how often it closed again after opening: a retry waiting on this target is due
    transitions: list[tuple[float, str]] = field(default_factory=list)

    @classmethod
    def from_spec(cls, spec: BreakerSpec) -> CircuitBreaker:
        """A closed breaker with a scenario's ``landscape.integration.circuit_breaker`` settings."""
        return cls(spec.failure_threshold, spec.cooldown)

    def admit(self, now: float) -> bool:
        """May a request go to the target at ``now``? Moves open → half-open when the cooldown is over;
        while half-open, admits the one probe and refuses the others until its verdict."""
        if self.state == OPEN and now >= self.opened_at + self.cooldown:
            self._enter(HALF_OPEN, now)
        if self.state == OPEN:
            return False
        if self.state == HALF_OPEN:
            if self.probing:
                return False
            self.probing = True
            self.probe_at = now
        return True

    def next_probe_at(self) -> float:
        """Earliest time a request may go out while open."""
        return self.opened_at + self.cooldown if self.state == OPEN else float("-inf")

    def record_success(self, now: float) -> None:
        """The target answered a request well: closed (from any state), failures forgotten."""
        self.failures = 0
        self.probing = False
        if self.state != CLOSED:
            self.closings += 1
            self._enter(CLOSED, now)

    def record_failure(self, now: float) -> None:
        """The target failed a request: opens at the threshold, or at once when half-open (then as of
        the probe's grid point, the last ``opened_at + k * cooldown`` at or before the probe went out)."""
        self.failures += 1
        self.probing = False
        if self.state == HALF_OPEN:
            cycles = max(1.0, (min(self.probe_at, now) - self.opened_at) // self.cooldown)
            self.opened_at += self.cooldown * cycles
        elif self.failures >= self.failure_threshold:
            self.opened_at = now
        if self.state != OPEN and (self.state == HALF_OPEN or self.failures >= self.failure_threshold):
            self._enter(OPEN, now)

    def release_probe(self) -> None:
        """The probe ended without a verdict on the target's health (busy 429, a refused posting, a lost
        answer checked in the ledger): the next request may probe."""
        self.probing = False

    def _enter(self, state: str, now: float) -> None:
        self.state = state
        self.transitions.append((now, state))


class ProcessedKeys(Protocol):
    """Durable set of idempotency keys already posted (in memory, or SQLite in the live workers)."""

    def __contains__(self, key: str) -> bool: ...

    def add(self, key: str) -> None: ...


# ------------------------------------------------------------------------------------------ actions
@dataclass(frozen=True)
class Post:
    """Send the message to its target now."""

    key: str
    attempt: int


@dataclass(frozen=True)
class Suppress:
    """A copy of an already-posted message: acknowledge it and post nothing."""

    key: str


@dataclass(frozen=True)
class RetryAt:
    """Try again at ``at`` (backoff or breaker cooldown)."""

    key: str
    attempt: int
    at: float


@dataclass(frozen=True)
class DeadLetter:
    key: str
    attempt: int
    reason: str


@dataclass(frozen=True)
class Done:
    """The target accepted the message; it is now a processed key."""

    key: str
    attempt: int


Action = Post | Suppress | RetryAt | DeadLetter | Done


@dataclass
class Delivery:
    """The delivery state machine for one target.

    ``offer`` a message when it arrives (or when its retry timer fires), then report the target's
    answer with ``succeeded`` / ``failed``. Every call returns the actions to carry out.
    """

    policy: RetryPolicy
    breaker: CircuitBreaker
    processed: ProcessedKeys
    idempotency: bool = True
    holds_probe: bool = False  # this machine's last admitted request is the breaker's half-open probe

    def offer(self, key: str, attempt: int, now: float, u: float = 0.5) -> Action:
        """A message (first try has ``attempt`` 1) is ready to go at ``now``."""
        if self.idempotency and key in self.processed:
            return Suppress(key)
        return self._admit(key, attempt, now, u)

    def offer_many(self, keys: list[str], attempt: int, now: float,
                   u: float = 0.5) -> tuple[list[str], Post | RetryAt | None]:
        """:meth:`offer` for messages that travel together as one request: the keys to suppress, and
        one action for all the others (None when every key is suppressed) -- the decisions ``offer``
        makes key by key, without an action object per message."""
        suppressed = [k for k in keys if k in self.processed] if self.idempotency else []
        if len(suppressed) == len(keys):
            return suppressed, None
        skip = set(suppressed)
        return suppressed, self._admit(next(k for k in keys if k not in skip), attempt, now, u)

    def _admit(self, key: str, attempt: int, now: float, u: float) -> Post | RetryAt:
        # Waiting for the breaker is not an attempt against the target.
        if not self.breaker.admit(now):
            if self.breaker.state == HALF_OPEN:  # another request is the probe: look again about `initial` later
                return RetryAt(key, attempt, now + self.policy.initial * (0.5 + u))
            return RetryAt(key, attempt, max(self.breaker.next_probe_at(), now) + self.policy.initial * u)
        self.holds_probe = self.breaker.state == HALF_OPEN
        return Post(key, attempt)

    def release(self) -> None:
        """The admitted request ended without an answer to report (e.g. the ERP's ledger was read
        instead, or the request was never sent): a half-open probe it held goes back to the breaker."""
        if self.holds_probe:
            self.holds_probe = False
            self.breaker.release_probe()

    def succeeded(self, key: str, attempt: int, now: float) -> Action:
        self.holds_probe = False
        self.breaker.record_success(now)
        if self.idempotency:
            self.processed.add(key)
        return Done(key, attempt)

    def failed(self, key: str, attempt: int, now: float, u: float, retry_after: float | None = None,
               permanent_reason: str | None = None) -> Action:
        """The target refused or failed. ``permanent_reason`` dead-letters at once (e.g. a 4xx)."""
        if permanent_reason is not None or retry_after is not None:
            self.release()  # an answer, but no verdict on the target's health
        else:
            self.holds_probe = False
            self.breaker.record_failure(now)
        if permanent_reason is not None:
            return DeadLetter(key, attempt, permanent_reason)
        if self.policy.gives_up_after(attempt):
            return DeadLetter(key, attempt, REASON_RETRIES_EXHAUSTED)
        wait = self.policy.delay(attempt, u)
        if self.breaker.state == OPEN:  # the outage's pace is the breaker's cooldown, not this backoff
            wait = max(self.breaker.next_probe_at(), now) - now + self.policy.initial * u
        if retry_after is not None:
            wait = max(wait, retry_after)
        return RetryAt(key, attempt + 1, now + wait)
