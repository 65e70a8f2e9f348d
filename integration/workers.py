"""Integration workers: JetStream ``EVENTS`` → mapping → routing → ERP postings, exactly once, in batches.

One pull consumer (:class:`~integration.jspull.BulkPuller`: messages in bulk, acks in bulk) fetches up
to ``fetch_batch`` messages at a time, validates them in one call and feeds *lanes*: every message
goes to the lane of its business key (the lot, else the correlation id, else the transaction id). A
lane takes whatever has queued up (at most ``fetch_batch``) as one batch and finishes it before the
next, so postings of one lot reach the ERP in order while different lots proceed in parallel; copies
of one transaction share a lane, so a copy never races its twin past the processed-key check. Batches
grow with the load: a lane waiting on the ERP collects the next batch meanwhile.

Per batch: one query reads the durable processed-key store for all its keys; messages are mapped and
routed; each target ERP gets the batch's postings in one ``POST /postings/batch`` (chunked to the
target's API burst when it is rate limited), after one durable intent row for the request; on the
ERP's 201 the keys are marked processed in one transaction, the delivery rows are written with one
``executemany``, and only then are the messages acknowledged. A worker killed mid-way thus loses
nothing: JetStream redelivers and the processed-key store suppresses what already landed.

The sans-IO :class:`~integration.delivery.Delivery` of the target decides, exactly as for a single
message: ``offer_many`` per batch (suppress / breaker wait / post, the decisions ``offer`` makes per
message); the ERP's answer is reported once per batch, so a batch succeeds or fails as a unit for
the circuit breaker and every message of a failed batch gets the same retry action (backoff, breaker
cooldown, 429 Retry-After) or dead letter.
When the ERP refuses a whole batch for good (a 4xx), its postings are retried one by one, in order,
so only the offending ones are dead-lettered. When an answer is lost (timeout, dropped connection)
the worker asks the ERP's ledger which of the batch's transactions landed (one lookup) before
posting the others again.

Delivery times are scenario seconds (``ScaledClock``); the retry policy and breaker cooldown from
the scenario are scenario durations too, so they shrink with ``--speed`` like everything else.

Limits, on purpose: a batch waiting for its retry holds its lane (other keys hashed to that lane
wait too; during an ERP outage every lane waits anyway). Order per key holds while the worker
lives; copies JetStream redelivers after a crash may arrive after newer ones, and a second copy of a
transaction found in the same batch is handled in the lane's next batch.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import TypeAdapter, ValidationError

from integration.broker import (
    EVENTS_STREAM,
    EVENTS_SUBJECTS,
    HEADER_CORRELATION,
    HEADER_MSG_ID,
    broker_time,
    dead_letter,
    ensure_streams,
)
from integration.canonical import CanonicalEvent
from integration.delivery import (
    HALF_OPEN,
    CircuitBreaker,
    DeadLetter,
    Delivery,
    RetryAt,
    RetryPolicy,
)
from integration.delivery_log import DELIVERY_COLUMNS, DeliveryLog
from integration.erp_client import REASON_ERP_REJECTED, ErpAnswer, ErpClient
from integration.gc_tuning import tune_gc
from integration.jspull import IN_PROGRESS, BulkPuller, acknowledge
from integration.mapping import Mapped, PlantMapping
from integration.worker_faults import AckLoss, fault_file
from integration.worker_keys import BatchProcessedKeys, KeyView
from kernel.clock import ScaledClock
from kernel.routing import Routing
from kernel.trace import (
    DEAD_LETTERED,
    DELIVERED,
    DOWNTIME,
    DUPLICATE_SUPPRESSED,
    ERP_POSTING_FLOWS,
    REASON_REDELIVERY,
)
from scenarios.spec import Scenario

__all__ = [
    "CONSUMER", "DELIVERY_COLUMNS", "REASON_ERP_REJECTED", "DeliveryLog", "ErpAnswer", "ErpClient", "Worker",
    "WorkerConfig", "WorkerStats", "parse_erp_urls", "run_worker",
]

CONSUMER = "erp-workers"
REASON_INVALID_EVENT = "invalid_event"
REASON_UNKNOWN_PLANT = "unknown_plant"
_POSTING = "posting"


# ------------------------------------------------------------------------------------------ worker
@dataclass
class WorkerConfig:
    """Everything one worker process needs; ``erp_urls`` maps ERP kind to base URL."""

    nats_url: str
    scenario: Scenario
    erp_urls: dict[str, str]
    run_dir: Path
    epoch: float
    speed: float
    lanes: int = 2
    fetch_batch: int = 1000  # messages per pull request, and the largest batch a lane handles at once
    fetch_wait: float = 0.5  # wall seconds a pull request lingers when the stream is empty
    # Fetched-but-unacknowledged messages JetStream allows the consumer: this bounds what the lanes hold.
    max_ack_pending: int = 8192
    ack_wait: float = 5.0  # wall seconds; held messages are kept alive with in-progress acks
    seed: int = 0
    consumer: str = CONSUMER

    def __post_init__(self) -> None:
        missing = Routing.of(self.scenario).kinds() - set(self.erp_urls)
        if missing:
            raise ValueError(f"--erp: the scenario routes plants to {', '.join(sorted(missing))} but no URL "
                             f"was given; add e.g. --erp {sorted(missing)[0]}=http://127.0.0.1:PORT")
        if self.fetch_batch < 1 or self.lanes < 1 or self.max_ack_pending < self.fetch_batch:
            raise ValueError("worker: lanes and fetch_batch must be >= 1 and max_ack_pending >= fetch_batch")


@dataclass
class _Lane:
    """The copies waiting for one lane, oldest first; JetStream's ``max_ack_pending`` bounds them."""

    items: list = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False, slots=True)
class _Copy:
    """One message copy in a lane; ``key`` is its transaction id (empty for an invalid event)."""

    msg: object
    event: CanonicalEvent | None
    error: str = ""
    t_broker: float = float("nan")
    held_since: float = 0.0  # event-loop time of fetch or of the last in-progress ack
    mapped: Mapped | None = None
    key: str = ""

    def __post_init__(self) -> None:
        if self.event is not None:
            self.key = self.event.txn_id


_EVENTS = TypeAdapter(list[CanonicalEvent])


@dataclass
class WorkerStats:
    delivered: int = 0
    suppressed: int = 0
    dead_lettered: int = 0
    failed_attempts: int = 0  # failed ERP requests (one per batch)
    batches: int = 0  # ERP batch requests answered 201
    acks_withheld: int = 0  # injected ack loss (broker_redelivery fault)
    by_target: dict[str, int] = field(default_factory=dict)


class Worker:
    """The live integration worker. ``await run(stop)`` until ``stop`` is set."""

    def __init__(self, config: WorkerConfig, on_ready: Callable[[], None] | None = None):
        self.cfg = config
        self.clock = ScaledClock(config.epoch, config.speed)
        self.router = Routing.of(config.scenario)
        master = config.scenario.landscape.items
        plants = config.scenario.landscape.all_plants
        self.mappings = {p.id: PlantMapping.from_spec(p, master) for p in plants}
        state = Path(config.run_dir) / "state"
        self.keys = BatchProcessedKeys(state / "worker-keys.sqlite")
        self.log = DeliveryLog(state / "deliveries.sqlite")
        integ = config.scenario.landscape.integration
        policy = RetryPolicy(integ.retry.initial, integ.retry.multiplier, integ.retry.max_delay,
                             integ.retry.max_attempts, integ.retry.jitter)
        # One breaker per target, shared by every lane (each lane wraps it with its own key view).
        self.deliveries = {
            kind: Delivery(policy, CircuitBreaker(integ.circuit_breaker.failure_threshold,
                                                  integ.circuit_breaker.cooldown),
                           self.keys, idempotency=integ.idempotency)
            for kind in config.erp_urls
        }
        self.erps = {kind: ErpClient(kind, url, connections=config.lanes)
                     for kind, url in config.erp_urls.items()}
        self.chunk = {kind: _batch_cap(config.scenario, kind, config.fetch_batch) for kind in config.erp_urls}
        self.rng = random.Random(config.seed)
        self.ack_loss = AckLoss(fault_file(config.run_dir), random.Random(config.seed + 1))
        self.ack_loss.refresh()
        self.stats = WorkerStats()
        self._held: set[_Copy] = set()  # fetched, not yet finished (kept alive by the heartbeat)
        self._probing: dict[str, bool] = {}
        self._on_ready = on_ready
        self.nc = self.js = None

    # ---------------------------------------------------------------------------------- main loop
    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; unfinished copies stay unacknowledged for the next run."""
        nc = await nats.connect(self.cfg.nats_url, name="synctwin-worker", max_reconnect_attempts=-1,
                                reconnect_time_wait=0.25, connect_timeout=5, error_cb=_note_error,
                                disconnected_cb=_note("broker connection lost; reconnecting"),
                                reconnected_cb=_note("broker connection back"))
        self.nc = nc
        try:
            self.js = nc.jetstream()
            puller = await self._subscribe()
            if self._on_ready is not None:
                self._on_ready()
            lanes = [_Lane() for _ in range(self.cfg.lanes)]
            tasks = [asyncio.create_task(self._lane(lane, KeyView(self.keys))) for lane in lanes]
            tasks.append(asyncio.create_task(self._heartbeat()))
            fetcher = asyncio.create_task(self._fetch(puller, lanes))
            await stop.wait()
            fetcher.cancel()
            await _quietly(fetcher)
            await puller.stop()
            await self._settle(deadline=2.0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            # close, not drain: unfinished copies stay unacknowledged and JetStream redelivers them.
            await _quietly(nc.close(), timeout=2.0)
            for erp in self.erps.values():
                await erp.close()
            self.keys.close()
            self.log.close()

    async def _subscribe(self) -> BulkPuller:
        """Create the durable pull consumer unless it exists (a restarted worker resumes it)."""
        config = ConsumerConfig(
            durable_name=self.cfg.consumer, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.cfg.ack_wait, max_deliver=-1, max_ack_pending=self.cfg.max_ack_pending,
            filter_subject=EVENTS_SUBJECTS,
        )
        await ensure_streams(self.js)  # idempotent; the worker may start before the gateway
        try:
            await self.js.consumer_info(EVENTS_STREAM, self.cfg.consumer)
        except NotFoundError:
            await self.js.add_consumer(EVENTS_STREAM, config)
        puller = BulkPuller(self.nc, EVENTS_STREAM, self.cfg.consumer, self.cfg.fetch_batch, self.cfg.fetch_wait)
        await puller.start()
        return puller

    async def _fetch(self, puller: BulkPuller, lanes: list[_Lane]) -> None:
        loop, n = asyncio.get_running_loop(), len(lanes)
        while True:
            msgs = await puller.next_batch()
            now, touched = loop.time(), set()
            try:
                copies = self._parse(msgs)
            except Exception as exc:  # noqa: BLE001 - never stop consuming: unacked copies come back
                print(f"worker: {len(msgs)} messages not parsed ({type(exc).__name__}: {exc}); left for "
                      "redelivery", file=sys.stderr, flush=True)
                continue
            self._held.update(copies)
            for copy in copies:
                copy.held_since = now
                event = copy.event
                key = event.lot or event.correlation_id or event.txn_id if event else ""
                i = zlib.crc32(key.encode()) % n if n > 1 else 0
                lanes[i].items.append(copy)
                touched.add(i)
            for i in touched:
                lanes[i].ready.set()

    def _parse(self, msgs: list) -> list[_Copy]:
        """Validate all messages in one call; one by one only when some message is invalid.

        The joined array is trusted only when every body is one object (``{`` … ``}``) and the array has
        one element per message, so an odd body can never shift events onto other messages."""
        times = [_broker_time(msg, self.clock) for msg in msgs]
        datas = [msg.data for msg in msgs]
        if all(d[:1] == b"{" and d[-1:] == b"}" for d in datas):
            try:
                events = _EVENTS.validate_json(b"[" + b",".join(datas) + b"]")
                if len(events) == len(msgs):
                    return [_Copy(m, e, t_broker=t) for m, e, t in zip(msgs, events, times, strict=True)]
            except ValidationError:
                pass
        copies = []
        for msg, t_broker in zip(msgs, times, strict=True):
            try:
                copies.append(_Copy(msg, CanonicalEvent.model_validate_json(msg.data), t_broker=t_broker))
            except ValidationError as exc:
                copies.append(_Copy(msg, None, error=str(exc).replace("\n", " ")[:300], t_broker=t_broker))
        return copies

    async def _lane(self, lane: _Lane, view: KeyView) -> None:
        carry: list[_Copy] = []
        items, size = lane.items, self.cfg.fetch_batch
        while True:
            if not carry and not items:
                lane.ready.clear()
                await lane.ready.wait()
                continue
            take = size - len(carry)
            batch = carry + items[:take]
            del items[:take]
            try:
                carry = await self._process(batch, view)
            except Exception as exc:  # noqa: BLE001 - e.g. a full disk: leave the batch to redelivery, go on
                print(f"worker: batch of {len(batch)} failed ({type(exc).__name__}: {exc}); left for redelivery",
                      file=sys.stderr, flush=True)
                carry = []
            self._held.difference_update(batch)
            self._held.update(carry)

    async def _settle(self, deadline: float) -> None:
        """Give copies already fetched a moment to finish, so a clean stop leaves few to redo."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        while self._held and loop.time() < end:
            await asyncio.sleep(0.02)

    async def _heartbeat(self) -> None:
        """Tell JetStream that copies held longer than a third of ``ack_wait`` are still being worked on."""
        loop = asyncio.get_running_loop()
        every = self.cfg.ack_wait / 3
        while True:
            await asyncio.sleep(every / 2)
            self.ack_loss.refresh()
            now, busy = loop.time(), []
            for copy in self._held:
                if now - copy.held_since >= every:
                    copy.held_since = now
                    busy.append(copy.msg)
            await _quietly(acknowledge(self.nc, busy, IN_PROGRESS), timeout=1.0)

    # ------------------------------------------------------------------------------- one batch
    async def _process(self, batch: list[_Copy], view: KeyView) -> list[_Copy]:
        """Finish every copy of ``batch`` except later copies of a transaction already in it, which
        are returned for the lane's next batch."""
        dead: list[tuple[_Copy, str, int, str, str]] = []
        handoff: list[_Copy] = []
        posts: dict[str, list[_Copy]] = {}
        carry: list[_Copy] = []
        seen: set[str] = set()
        for copy in batch:
            event = copy.event
            if event is None:
                dead.append((copy, "", 0, REASON_INVALID_EVENT, copy.error))
            elif event.flow not in ERP_POSTING_FLOWS:
                handoff.append(copy)
            elif event.txn_id in seen:
                carry.append(copy)
            else:
                mapping = self.mappings.get(event.plant)
                kind = self.router.target(event.plant, event.t_created)
                if mapping is None or kind is None:
                    dead.append((copy, "", 0, REASON_UNKNOWN_PLANT, f"plant {event.plant!r} is not in the scenario"))
                    continue
                mapped = mapping.map_one(event.item, event.qty, event.unit)
                if not isinstance(mapped, Mapped):
                    dead.append((copy, kind, 0, mapped.reason, mapped.detail))
                    continue
                copy.mapped = mapped
                seen.add(event.txn_id)
                posts.setdefault(kind, []).append(copy)
        if handoff:
            await self._hand_off(handoff)
        if dead:
            await self._dead_letter(dead)
        if posts:
            states = view.load(seen)
            uncertain = {k for k, s in states.items() if s == _POSTING}
            await asyncio.gather(*(self._deliver_all(items, kind, view, uncertain) for kind, items in posts.items()))
        return carry

    async def _hand_off(self, copies: list[_Copy]) -> None:
        """Downtime, telemetry ...: not ERP postings. Their consumers (maintenance, analytics) read the
        stream themselves; the workers only record the hand-off."""
        now = self.clock.now()
        rows = []
        for copy in copies:
            event = copy.event
            target = "maintenance" if event.flow == DOWNTIME else (event.target.lower() or "analytics")
            rows.append(self._row(copy, target if target != "erp" else "analytics", 0, DELIVERED, "", now, ""))
        self.log.record_many(rows)
        await self._ack(copies)

    async def _deliver_all(self, items: list[_Copy], kind: str, view: KeyView, uncertain: set[str]) -> None:
        """Deliver ``items`` to ``kind`` in order, in chunks the target's API accepts."""
        size = self.chunk[kind]
        for start in range(0, len(items), size):
            await self._deliver(items[start:start + size], kind, view, uncertain)

    async def _deliver(self, items: list[_Copy], kind: str, view: KeyView, uncertain: set[str],
                       attempt: int = 1) -> None:
        """Post ``items`` as one batch until it is delivered, suppressed or dead-lettered."""
        shared = self.deliveries[kind]
        delivery = Delivery(shared.policy, shared.breaker, view, shared.idempotency)
        erp, detail = self.erps[kind], ""
        while items:
            now, u = self.clock.now(), self.rng.random()
            suppressed, action = delivery.offer_many([c.key for c in items], attempt, now, u)
            if suppressed:
                skip = set(suppressed)
                await self._suppress([c for c in items if c.key in skip], kind, attempt - 1)
                items = [c for c in items if c.key not in skip]
                continue
            if isinstance(action, RetryAt):  # breaker open: the same wait for the whole batch
                await asyncio.sleep(max(0.0, self.clock.wall_delay(action.at - now)))
                continue
            if delivery.breaker.state == HALF_OPEN and self._probing.get(kind):
                # Half-open admits one probe per target; the other lanes wait for its verdict.
                await asyncio.sleep(self.clock.wall_delay(delivery.policy.initial * (0.5 + self.rng.random())))
                continue
            self._probing[kind] = delivery.breaker.state == HALF_OPEN
            try:
                answer, items, intent = await self._attempt(erp, items, uncertain, delivery, attempt)
            finally:
                self._probing[kind] = False
            if answer is None:  # checked the ledger: what landed is done, the rest is posted now
                continue
            now = self.clock.now()
            if answer.ok:
                for copy in items:
                    delivery.succeeded(copy.key, attempt, now)
                await self._delivered(items, kind, view, attempt, now, answer.detail)
                self.keys.answered(intent)
                return
            self.stats.failed_attempts += 1
            keys = [c.key for c in items]
            if answer.landed is None:
                uncertain.update(keys)
            if intent is not None:
                (self.keys.unanswered if answer.landed is None else self.keys.answered)(intent)
            detail = answer.detail
            retry_after = answer.retry_after_scenario
            if retry_after is None and answer.retry_after is not None:
                retry_after = answer.retry_after * self.cfg.speed
            result = delivery.failed(keys[0], attempt, now, u, retry_after=retry_after,
                                     permanent_reason=answer.permanent)
            if isinstance(result, DeadLetter):
                self.keys.abandon_many([k for k in keys if k not in uncertain])
                if answer.permanent and len(items) > 1:
                    # Refused as a whole for some of its postings: find them one by one, in order.
                    for copy in items:
                        await self._deliver([copy], kind, view, uncertain, attempt)
                    return
                await self._dead_letter([(c, kind, result.attempt, result.reason, detail) for c in items])
                return
            assert isinstance(result, RetryAt)
            attempt = result.attempt
            await asyncio.sleep(max(0.0, self.clock.wall_delay(result.at - self.clock.now())))

    async def _attempt(self, erp: ErpClient, items: list[_Copy], uncertain: set[str], delivery: Delivery,
                       attempt: int) -> tuple[ErpAnswer | None, list[_Copy], int | None]:
        """One attempt: post the batch (returning the answer, the batch and its durable intent), or --
        when earlier requests for some of it went unanswered -- first ask the ERP which of those landed.
        ``(None, rest, None)`` means the ledger was read: the landed ones are finished and ``rest`` is to
        be posted right away."""
        unsure = [c.key for c in items if c.key in uncertain]
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
                await self._delivered(landed, erp.kind, delivery.processed, attempt, now,
                                      "in the ledger after an unanswered request")
            return None, [c for c in items if c.key not in found], None
        intent = self.keys.begin_batch([c.key for c in items], self.clock.now())
        bodies = [{"txn_id": c.key, "flow": c.event.flow, "plant": c.event.plant, "item": c.mapped.item,
                   "qty": c.mapped.qty, "unit": c.mapped.unit, "t_created": c.event.t_created} for c in items]
        return await erp.post_batch(bodies), items, intent

    # ------------------------------------------------------------------------------ finishing
    async def _ack(self, copies: list[_Copy]) -> None:
        """Acknowledge every copy (but an injected share); a lost ack only means a redelivery, which the
        processed keys suppress."""
        await _quietly(acknowledge(self.nc, [c.msg for c in self.ack_loss.keep(copies)]), timeout=5.0)
        self.stats.acks_withheld = self.ack_loss.withheld

    async def _delivered(self, items: list[_Copy], kind: str, view: KeyView, attempt: int, now: float,
                         detail: str) -> None:
        """Keys durable first, then the delivery rows, then the acks."""
        view.commit(now)
        self.log.record_many([self._row(c, kind, attempt, DELIVERED, "", now, detail, mapped=True) for c in items])
        await self._ack(items)
        self.stats.delivered += len(items)
        self.stats.batches += 1
        self.stats.by_target[kind] = self.stats.by_target.get(kind, 0) + len(items)

    async def _suppress(self, items: list[_Copy], kind: str, attempts: int) -> None:
        self.log.record_many([self._row(c, kind, attempts, DUPLICATE_SUPPRESSED, REASON_REDELIVERY,
                                        float("nan"), "", mapped=True) for c in items])
        await self._ack(items)
        self.stats.suppressed += len(items)

    async def _dead_letter(self, entries: list[tuple[_Copy, str, int, str, str]]) -> None:
        """Store each copy on ``dlq.<plant>.<flow>`` with its reason, then acknowledge them."""
        await asyncio.gather(*(self._store_dead_letter(copy, reason, detail)
                               for copy, _, _, reason, detail in entries))
        nan = float("nan")
        self.log.record_many([self._row(copy, kind, attempts, DEAD_LETTERED, reason, nan, detail)
                              for copy, kind, attempts, reason, detail in entries])
        await self._ack([e[0] for e in entries])
        self.stats.dead_lettered += len(entries)

    async def _store_dead_letter(self, copy: _Copy, reason: str, detail: str) -> None:
        msg, event = copy.msg, copy.event
        headers = msg.headers or {}
        txn = event.txn_id if event else headers.get(HEADER_MSG_ID, f"seq-{msg.metadata.sequence.stream}")
        plant, flow = (event.plant, event.flow) if event else ("unknown", "invalid")
        correlation = event.correlation_id if event else headers.get(HEADER_CORRELATION, "")
        while True:  # the copy is acked only once its dead letter is durably stored
            try:
                await dead_letter(self.js, msg.data, plant, flow, txn, correlation, reason, detail)
                return
            except (nats.errors.Error, TimeoutError):
                await asyncio.sleep(0.5)

    def _row(self, copy: _Copy, kind: str, attempts: int, outcome: str, reason: str, t_delivered: float,
             detail: str, mapped: bool = False) -> tuple:
        """The copy's delivery row in ``DELIVERY_COLUMNS`` order. Item, quantity and unit are the ERP's
        (mapped) ones for postings, so trace and ledger reconcile; otherwise the plant's as received."""
        event, t_acked = copy.event, self.clock.now()  # outcome recorded now, broker ack next: kernel/trace.py
        if event is None:
            txn = (copy.msg.headers or {}).get(HEADER_MSG_ID, "")
            return (txn, copy.t_broker, t_delivered, attempts, outcome, reason, kind, None, None, None, None,
                    None, None, None, None, None, None, t_acked, detail)
        m = copy.mapped if mapped and copy.mapped is not None else event
        return (event.txn_id, copy.t_broker, t_delivered, attempts, outcome, reason, kind, event.correlation_id,
                event.flow, event.plant, event.line, m.item, event.lot, m.qty, m.unit, event.schema_version,
                event.t_created, t_acked, detail)


def _broker_time(msg, clock: ScaledClock) -> float:
    """``broker_time`` without building nats-py's metadata objects (a tenth of the worker's CPU): the
    stored timestamp is a field of the ack subject, ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.
    <cseq>.<ns>.<pending>``; other subject forms go through nats-py."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9 and tokens[1] == "ACK":
        return clock.to_scenario(int(tokens[7]) / 1e9)
    return broker_time(msg, clock)


def _batch_cap(scenario: Scenario, kind: str, limit: int) -> int:
    """Postings per request to ``kind``: ``limit``, or the ERP's API burst (its rate limit's bucket
    capacity) when that is smaller -- a larger batch could never pass the rate limit."""
    rate = scenario.erp_for(kind).rate_limit
    return limit if not rate else max(1, min(limit, int(max(1.0, rate))))


async def _note_error(exc: Exception) -> None:
    """One line per broker connection error instead of nats-py's default traceback."""
    print(f"worker: broker: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def _note(text: str) -> Callable[[], Awaitable[None]]:
    async def callback() -> None:
        print(f"worker: {text}", file=sys.stderr, flush=True)

    return callback


async def _quietly(awaitable, timeout: float | None = None) -> None:
    """Await ``awaitable`` ignoring its failure: used for acks and shutdown, where the broker may be
    gone and JetStream's redelivery is the recovery path."""
    try:
        if timeout is None:
            await awaitable
        else:
            await asyncio.wait_for(awaitable, timeout)
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - see docstring
        pass


def parse_erp_urls(values: list[str]) -> dict[str, str]:
    """``["legacy=http://..", "cloud=http://.."]`` → mapping; raises ValueError naming the bad value."""
    urls: dict[str, str] = {}
    for value in values:
        kind, sep, url = value.partition("=")
        if not sep or kind not in ("legacy", "cloud") or not url.startswith(("http://", "https://")):
            raise ValueError(f"--erp {value!r}: write KIND=URL with KIND legacy or cloud, "
                             "e.g. --erp legacy=http://127.0.0.1:8081")
        urls[kind] = url
    return urls


def _run_loop(coro):
    """``asyncio.run`` on uvloop when installed (``uvicorn[standard]`` brings it): the worker is
    I/O bound per message and uvloop halves the event loop's share of its CPU."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def run_worker(config: WorkerConfig) -> WorkerStats:
    """Entry point of ``synctwin worker``: run until SIGTERM/SIGINT, print READY once consuming."""
    import signal

    async def main() -> WorkerStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = Worker(config, on_ready=lambda: print(f"READY worker {config.nats_url}", flush=True))
        await worker.run(stop)
        return worker.stats

    tune_gc()
    stats = _run_loop(main())
    print(json.dumps({"worker": "stopped", **stats.__dict__}), flush=True)
    return stats
