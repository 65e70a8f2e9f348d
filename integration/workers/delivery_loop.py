"""Posting one lane batch's copies to one ERP until each is delivered, suppressed or dead-lettered.

The sans-IO :class:`~integration.delivery.Delivery` of the target decides, exactly as for a single
message: ``offer_many`` per batch (suppress / breaker wait / post, the decisions ``offer`` makes per
message); the ERP's answer is reported once per batch, so a batch succeeds or fails as a unit for the
circuit breaker (one breaker per target, shared by the lanes; its half-open probe rule lives in
:class:`~integration.delivery.CircuitBreaker`) and every message of a failed batch gets the same retry
action (backoff, breaker cooldown, 429 Retry-After) or dead letter.

When the ERP refuses a whole batch for good (a 4xx), its postings are retried one by one, in order, so
only the offending ones are dead-lettered. When an answer is lost (timeout, dropped connection) the
loop asks the ERP's ledger which of the batch's transactions landed (one lookup) before posting the
others again. That lookup is part of idempotency: with ``idempotency: false`` it is skipped too, and a
lost answer is simply posted again (what the lost-answer experiment's negative control shows). Before
each request one durable intent row is written, so a worker killed mid-request knows which keys to look
up after its restart.

Delivery times are scenario seconds (``ScaledClock``); the retry policy and breaker cooldown from the
scenario are scenario durations too, so they shrink with ``--speed`` like everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

from integration.delivery import DeadLetter, Delivery, RetryAt
from integration.erp_client import ErpAnswer, ErpClient
from integration.worker_keys import BatchProcessedKeys, KeyView
from integration.workers.config import WorkerStats
from integration.workers.lanes import Copy
from integration.workers.outcomes import Outcomes
from kernel.clock import ScaledClock


class DeliveryLoop:
    """Delivers copies to the target ERPs with their :class:`Delivery` state machines."""

    def __init__(self, deliveries: dict[str, Delivery], erps: dict[str, ErpClient], chunk: dict[str, int],
                 keys: BatchProcessedKeys, outcomes: Outcomes, clock: ScaledClock, rng: random.Random,
                 speed: float, stats: WorkerStats,
                 on_breaker: Callable[[str, list[tuple[float, str]]], None] | None = None):
        self.deliveries, self.erps, self.chunk = deliveries, erps, chunk
        self.keys, self.outcomes, self.clock, self.rng = keys, outcomes, clock, rng
        self.speed, self.stats = speed, stats
        self._closing: dict[str, asyncio.Event] = {}  # per target: set when its breaker closes again
        # The breaker's transitions are recorded as they happen: failed attempts leave no delivery row, and
        # the opening and the probes are what a calibration needs to replay an outage (virtual/calibration.py).
        self._on_breaker = on_breaker
        self._noted = dict.fromkeys(deliveries, 0)  # per target: transitions already handed on

    async def deliver_all(self, items: list[Copy], kind: str, view: KeyView, uncertain: set[str]) -> None:
        """Deliver ``items`` to ``kind`` in order, in chunks the target's API accepts. ``uncertain`` holds
        the keys whose earlier request went unanswered (looked up in the ledger before posting again)."""
        size = self.chunk[kind]
        for start in range(0, len(items), size):
            await self._deliver(items[start:start + size], kind, view, uncertain)

    async def _deliver(self, items: list[Copy], kind: str, view: KeyView, uncertain: set[str],
                       attempt: int = 1) -> None:
        """Post ``items`` as one batch until it is delivered, suppressed or dead-lettered."""
        shared = self.deliveries[kind]
        delivery = Delivery(shared.policy, shared.breaker, view, shared.idempotency)
        erp, detail = self.erps[kind], ""
        while items:
            now, u = self.clock.now(), self.rng.random()
            suppressed, action = delivery.offer_many([c.key for c in items], attempt, now, u)
            self._note_breaker(kind)
            if suppressed:
                skip = set(suppressed)
                done, items = [c for c in items if c.key in skip], [c for c in items if c.key not in skip]
                await self.outcomes.suppressed(done, kind, attempt - 1)
            if action is None:
                continue
            if isinstance(action, RetryAt):  # breaker open, or half-open with another lane's probe out
                await self._wait_until(kind, action.at)
                continue
            try:
                answer, items, intent = await self._attempt(erp, items, uncertain, delivery, attempt)
            except BaseException:
                delivery.release()
                raise
            if answer is None:  # checked the ledger: what landed is done, the rest is posted now
                delivery.release()
                continue
            now = self.clock.now()
            if answer.ok:
                closings = shared.breaker.closings
                for copy in items:
                    delivery.succeeded(copy.key, attempt, now)
                if shared.breaker.closings != closings:  # this batch was the successful probe
                    self._note_breaker(kind)
                    self._wake(kind)
                await self.outcomes.delivered(items, kind, view, attempt, now, answer.detail)
                self.keys.answered(intent)
                return
            self.stats.failed_attempts += 1
            keys = [c.key for c in items]
            if answer.landed is None and delivery.idempotency:  # the lookup is part of idempotency
                uncertain.update(keys)
            if intent is not None:
                (self.keys.unanswered if answer.landed is None else self.keys.answered)(intent)
            detail = answer.detail
            retry_after = answer.retry_after_scenario
            if retry_after is None and answer.retry_after is not None:
                retry_after = answer.retry_after * self.speed
            result = delivery.failed(keys[0], attempt, now, u, retry_after=retry_after,
                                     permanent_reason=answer.permanent)
            self._note_breaker(kind)
            if isinstance(result, DeadLetter):
                self.keys.abandon_many([k for k in keys if k not in uncertain])
                if answer.permanent and len(items) > 1:
                    # Refused as a whole for some of its postings: find them one by one, in order.
                    for copy in items:
                        await self._deliver([copy], kind, view, uncertain, attempt)
                    return
                await self.outcomes.dead_lettered([(c, kind, result.attempt, result.reason, detail) for c in items])
                return
            assert isinstance(result, RetryAt)
            attempt = result.attempt
            await self._wait_until(kind, result.at)

    def _note_breaker(self, kind: str) -> None:
        """Hand the breaker's new transitions of ``kind`` to ``on_breaker`` (a durable record)."""
        transitions = self.deliveries[kind].breaker.transitions
        if self._on_breaker is not None and len(transitions) > self._noted[kind]:
            self._on_breaker(kind, transitions[self._noted[kind]:])
            self._noted[kind] = len(transitions)

    async def _wait_until(self, kind: str, at: float) -> None:
        """Sleep until scenario time ``at``, or until the breaker of ``kind`` closes again after a successful
        probe: then every lane waiting on that target retries at once (integration/delivery.py)."""
        delay = max(0.0, self.clock.wall_delay(at - self.clock.now()))
        closing = self._closing.setdefault(kind, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await closing.wait()

    def _wake(self, kind: str) -> None:
        closing = self._closing.pop(kind, None)
        if closing is not None:
            closing.set()

    async def _attempt(self, erp: ErpClient, items: list[Copy], uncertain: set[str], delivery: Delivery,
                       attempt: int) -> tuple[ErpAnswer | None, list[Copy], int | None]:
        """One attempt: post the batch (returning the answer, the batch and its durable intent), or --
        when earlier requests for some of it went unanswered -- first ask the ERP which of those landed.
        ``(None, rest, None)`` means the ledger was read: the landed ones are finished and ``rest`` is to
        be posted right away."""
        unsure = [c.key for c in items if c.key in uncertain] if delivery.idempotency else []
        if unsure:
            found = await erp.posted_among(unsure)
            if found is None:
                return ErpAnswer(False, landed=None, detail=f"{erp.kind}: ledger not readable"), items, None
            uncertain.difference_update(unsure)
            landed = [c for c in items if c.key in found]
            if landed:
                now = self.clock.now()
                for copy in landed:
                    delivery.succeeded(copy.key, attempt, now)
                await self.outcomes.delivered(landed, erp.kind, delivery.processed, attempt, now,
                                              "in the ledger after an unanswered request")
            return None, [c for c in items if c.key not in found], None
        intent = self.keys.begin_batch([c.key for c in items], self.clock.now())
        bodies = [{"txn_id": c.key, "flow": c.event.flow, "plant": c.event.plant, "item": c.mapped.item,
                   "qty": c.mapped.qty, "unit": c.mapped.unit, "t_created": c.event.t_created} for c in items]
        return await erp.post_batch(bodies), items, intent
