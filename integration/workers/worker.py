"""The live integration worker: one pull consumer feeding lanes, each lane posting its batches.

One :class:`~integration.jspull.BulkPuller` (messages in bulk, acks in bulk) fetches up to
``fetch_batch`` messages at a time, validates them in one call and feeds the lanes
(:mod:`integration.workers.lanes`). A lane takes whatever has queued up (at most ``fetch_batch``) as one
batch and finishes it before the next, so postings of one lot reach the ERP in order while different
lots proceed in parallel. Batches grow with the load: a lane waiting on the ERP collects the next batch
meanwhile.

Per batch: one query reads the durable processed-key store for all its keys; messages are mapped and
routed (:mod:`integration.workers.triage`); each target ERP gets the batch's postings in one
``POST /postings/batch`` (:mod:`integration.workers.delivery_loop`); on the ERP's 201 the keys are
marked processed in one transaction, the delivery rows are written with one ``executemany``, and only
then are the messages acknowledged (:mod:`integration.workers.outcomes`). A worker killed mid-way thus
loses nothing: JetStream redelivers and the processed-key store suppresses what already landed.

Limits, on purpose: a batch waiting for its retry holds its lane (other keys hashed to that lane wait
too; during an ERP outage every lane waits anyway). Order per key holds while the worker lives; copies
JetStream redelivers after a crash may arrive after newer ones, and a second copy of a transaction
found in the same batch is handled in the lane's next batch.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Callable
from pathlib import Path

from integration.delivery import CircuitBreaker, Delivery, RetryPolicy
from integration.delivery_log import DeliveryLog
from integration.erp_client import ErpClient
from integration.jspull import IN_PROGRESS, BulkPuller, acknowledge
from integration.worker_faults import AckLoss, fault_file
from integration.worker_keys import BatchProcessedKeys, KeyView
from integration.workers.broker_link import cancel_all, connect, quietly, subscribe
from integration.workers.config import WorkerConfig, WorkerStats, batch_cap
from integration.workers.delivery_loop import DeliveryLoop
from integration.workers.lanes import Copy, Lane, lane_of, parse_copies
from integration.workers.mapping_reload import MappingWatch, build_mappings
from integration.workers.outcomes import Outcomes
from integration.workers.triage import triage
from kernel.clock import ScaledClock
from kernel.routing import Routing

_POSTING = "posting"  # the key store's state of a key whose request went out unanswered


class Worker:
    """The live integration worker. ``await run(stop)`` until ``stop`` is set."""

    def __init__(self, config: WorkerConfig, on_ready: Callable[[], None] | None = None):
        self.cfg = config
        self.clock = ScaledClock(config.epoch, config.speed)
        self.router = Routing.of(config.scenario)
        # The scenario's mappings plus the run's mapping changes, re-read while running (mapping_reload).
        self.mapping_watch = MappingWatch(config.run_dir, config.scenario)
        self.mappings = self.mapping_watch.refresh() or build_mappings(config.scenario)
        state = Path(config.run_dir) / "state"
        self.keys = BatchProcessedKeys(state / "worker-keys.sqlite")
        self.log = DeliveryLog(state / "deliveries.sqlite")
        integ = config.scenario.landscape.integration
        policy = RetryPolicy.from_spec(integ.retry)
        # One breaker per target, shared by every lane (each lane wraps it with its own key view).
        self.deliveries = {
            kind: Delivery(policy, CircuitBreaker.from_spec(integ.circuit_breaker), self.keys,
                           idempotency=integ.idempotency)
            for kind in config.erp_urls
        }
        self.erps = {kind: ErpClient(kind, url, connections=config.lanes) for kind, url in config.erp_urls.items()}
        self.stats = WorkerStats()
        ack_loss = AckLoss(fault_file(config.run_dir), random.Random(config.seed + 1))
        ack_loss.refresh()
        # A withheld ack comes back after the scenario's ack wait, also when the consumer's own is longer.
        redeliver_after = config.ack_wait if config.consumer_ack_wait > (config.ack_wait or 0.0) else None
        self.outcomes = Outcomes(self.clock, self.log, ack_loss, self.stats, redeliver_after)
        chunk = {kind: batch_cap(config.scenario, kind, config.fetch_batch) for kind in config.erp_urls}
        self.poster = DeliveryLoop(self.deliveries, self.erps, chunk, self.keys, self.outcomes, self.clock,
                                   random.Random(config.seed), config.speed, self.stats,
                                   on_breaker=lambda kind, moves: self.log.record_breaker(
                                       f"erp-{kind}", config.consumer_name, moves))
        self._held: set[Copy] = set()  # fetched, not yet finished (kept alive by the heartbeat)
        self._on_ready = on_ready
        self.nc = None

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; unfinished copies stay unacknowledged for the next run."""
        nc = self.nc = await connect(self.cfg.nats_url)
        try:
            self.outcomes.attach(nc)
            puller = await subscribe(nc, self.cfg)
            if self._on_ready is not None:
                self._on_ready()
            lanes = [Lane() for _ in range(self.cfg.lanes)]
            tasks = [asyncio.create_task(self._lane(lane, KeyView(self.keys))) for lane in lanes]
            tasks.append(asyncio.create_task(self._heartbeat()))
            fetcher = asyncio.create_task(self._fetch(puller, lanes))
            await stop.wait()
            fetcher.cancel()
            await quietly(fetcher)
            await puller.stop()
            await self._settle(deadline=2.0)
            await cancel_all(tasks)
        finally:
            # close, not drain: unfinished copies stay unacknowledged and JetStream redelivers them.
            await quietly(nc.close(), timeout=2.0)
            for erp in self.erps.values():
                await erp.close()
            self.keys.close()
            self.log.close()

    async def _fetch(self, puller: BulkPuller, lanes: list[Lane]) -> None:
        loop, n = asyncio.get_running_loop(), len(lanes)
        while True:
            msgs = await puller.next_batch()
            now, touched = loop.time(), set()
            try:
                copies = parse_copies(msgs, self.clock)
            except Exception as exc:  # noqa: BLE001 - never stop consuming: unacked copies come back
                print(f"worker: {len(msgs)} messages not parsed ({type(exc).__name__}: {exc}); left for "
                      "redelivery", file=sys.stderr, flush=True)
                continue
            self._held.update(copies)
            for copy in copies:
                copy.held_since = now
                i = lane_of(copy, n)
                lanes[i].items.append(copy)
                touched.add(i)
            for i in touched:
                lanes[i].ready.set()

    async def _lane(self, lane: Lane, view: KeyView) -> None:
        carry: list[Copy] = []
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

    async def _process(self, batch: list[Copy], view: KeyView) -> list[Copy]:
        """Finish every copy of ``batch`` except later copies of a transaction already in it, which
        are returned for the lane's next batch."""
        plan = triage(batch, self.mappings, self.router)
        if plan.handoff:
            await self.outcomes.handed_off(plan.handoff)
        if plan.dead:
            await self.outcomes.dead_lettered(plan.dead)
        if plan.posts:
            states = view.load(plan.keys)
            uncertain = {k for k, s in states.items() if s == _POSTING}
            await asyncio.gather(*(self.poster.deliver_all(items, kind, view, uncertain)
                                   for kind, items in plan.posts.items()))
        return plan.carry

    async def _settle(self, deadline: float) -> None:
        """Give copies already fetched a moment to finish, so a clean stop leaves few to redo."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        while self._held and loop.time() < end:
            await asyncio.sleep(0.02)

    async def _heartbeat(self) -> None:
        """Tell JetStream that copies held longer than a third of the consumer's ack wait are still being
        worked on; pick up injected ack loss and mapping changes."""
        loop = asyncio.get_running_loop()
        every = self.cfg.consumer_ack_wait / 3
        while True:
            await asyncio.sleep(every / 2)
            self.outcomes.ack_loss.refresh()
            mappings = self.mapping_watch.refresh()
            if mappings is not None:
                self.mappings = mappings
            now, busy = loop.time(), []
            for copy in self._held:
                if now - copy.held_since >= every:
                    copy.held_since = now
                    busy.append(copy.msg)
            await quietly(acknowledge(self.nc, busy, IN_PROGRESS), timeout=1.0)
