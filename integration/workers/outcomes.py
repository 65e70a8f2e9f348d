"""How a copy's journey ends: its delivery row, its dead letter, its broker ack -- in that order.

Rows are written before acks, so a worker killed in between leaves copies JetStream redelivers and the
processed keys suppress; an ack is acknowledged quietly (a lost one only means such a redelivery).
"""

from __future__ import annotations

import asyncio
from typing import Any

import nats

from integration.broker import HEADER_CORRELATION, HEADER_MSG_ID, dead_letter
from integration.delivery_log import DeliveryLog
from integration.jspull import acknowledge, nak_after
from integration.worker_faults import AckLoss
from integration.worker_keys import KeyView
from integration.workers.broker_link import quietly
from integration.workers.config import WorkerStats
from integration.workers.lanes import Copy
from integration.workers.triage import DeadEntry
from kernel.clock import ScaledClock
from kernel.trace import DEAD_LETTERED, DELIVERED, DOWNTIME, DUPLICATE_SUPPRESSED, REASON_REDELIVERY


class Outcomes:
    """Records outcomes in the delivery log and acknowledges the copies (``attach`` the broker first)."""

    def __init__(self, clock: ScaledClock, log: DeliveryLog, ack_loss: AckLoss, stats: WorkerStats,
                 redeliver_after: float | None = None):
        self.clock, self.log, self.ack_loss, self.stats = clock, log, ack_loss, stats
        # Wall seconds after which a withheld ack's copy comes back (a NAK with that delay); None: left to the
        # consumer's ack wait, which is then the same.
        self.redeliver_after = redeliver_after
        self.nc: Any = None
        self.js: Any = None

    def attach(self, nc: Any) -> None:
        """Use broker connection ``nc`` for acks and dead letters."""
        self.nc, self.js = nc, nc.jetstream()

    async def ack(self, copies: list[Copy]) -> None:
        """Acknowledge every copy (but an injected share); a lost ack only means a redelivery, which the
        processed keys suppress."""
        kept = self.ack_loss.keep(copies)
        await quietly(acknowledge(self.nc, [c.msg for c in kept]), timeout=5.0)
        if self.redeliver_after is not None and len(kept) < len(copies):
            acked = set(map(id, kept))
            await quietly(acknowledge(self.nc, [c.msg for c in copies if id(c) not in acked],
                                      nak_after(self.redeliver_after)), timeout=5.0)
        self.stats.acks_withheld = self.ack_loss.withheld

    async def handed_off(self, copies: list[Copy]) -> None:
        """Downtime, telemetry ...: not ERP postings. Their consumers (maintenance, analytics) read the
        stream themselves; the workers only record the hand-off."""
        now = self.clock.now()
        rows = []
        for copy in copies:
            event = copy.event
            target = "maintenance" if event.flow == DOWNTIME else (event.target.lower() or "analytics")
            rows.append(self.row(copy, target if target != "erp" else "analytics", 0, DELIVERED, "", now, ""))
        self.log.record_many(rows)
        await self.ack(copies)

    async def delivered(self, items: list[Copy], kind: str, view: KeyView, attempt: int, now: float,
                        detail: str) -> None:
        """Keys durable first, then the delivery rows, then the acks."""
        view.commit(now)
        self.log.record_many([self.row(c, kind, attempt, DELIVERED, "", now, detail, mapped=True) for c in items])
        await self.ack(items)
        self.stats.delivered += len(items)
        self.stats.batches += 1
        self.stats.by_target[kind] = self.stats.by_target.get(kind, 0) + len(items)

    async def suppressed(self, items: list[Copy], kind: str, attempts: int) -> None:
        """Copies of postings already made: recorded as suppressed redeliveries and acknowledged."""
        self.log.record_many([self.row(c, kind, attempts, DUPLICATE_SUPPRESSED, REASON_REDELIVERY,
                                       float("nan"), "", mapped=True) for c in items])
        await self.ack(items)
        self.stats.suppressed += len(items)

    async def dead_lettered(self, entries: list[DeadEntry]) -> None:
        """Store each copy on ``dlq.<plant>.<flow>`` with its reason, then acknowledge them."""
        await asyncio.gather(*(self._store_dead_letter(copy, reason, detail)
                               for copy, _, _, reason, detail in entries))
        nan = float("nan")
        self.log.record_many([self.row(copy, kind, attempts, DEAD_LETTERED, reason, nan, detail)
                              for copy, kind, attempts, reason, detail in entries])
        await self.ack([e[0] for e in entries])
        self.stats.dead_lettered += len(entries)

    async def _store_dead_letter(self, copy: Copy, reason: str, detail: str) -> None:
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

    def row(self, copy: Copy, kind: str, attempts: int, outcome: str, reason: str, t_delivered: float,
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
