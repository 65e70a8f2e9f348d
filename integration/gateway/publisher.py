"""The gateway's side of JetStream: publish batches with PubAcks, look events up, list and replay the DLQ.

Status reads find an event by its subject, which ends in its id (:mod:`integration.gateway.status_index`):
one look-up of the last message on ``events.<plant>.*.<id token>``, never a scan of the EVENTS stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import nats

from integration.broker import (
    DLQ_STREAM,
    HEADER_CORRELATION,
    HEADER_DLQ_DETAIL,
    HEADER_DLQ_REASON,
    HEADER_MSG_ID,
    ConnectionLog,
    dlq_subject,
    ensure_streams,
    event_subject,
    nats_servers,
    read_messages,
)
from integration.gateway import status_index
from integration.gateway.ingest import Message
from integration.gateway.jspub import BatchPublisher
from kernel.clock import ScaledClock


class BrokerUnavailable(RuntimeError):
    """The broker did not acknowledge every message in time; ``stored`` of them were acknowledged."""

    def __init__(self, message: str, stored: int = 0):
        self.stored = stored
        super().__init__(message)


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ message, decoded."""

    seq: int
    subject: str
    txn_id: str
    plant: str
    flow: str
    correlation_id: str
    reason: str
    detail: str
    t_dead_lettered: float
    t_created: float
    body: bytes

    def summary(self) -> dict[str, Any]:
        """JSON-friendly view (without the body)."""
        return {
            "seq": self.seq, "txn_id": self.txn_id, "plant": self.plant, "flow": self.flow,
            "correlation_id": self.correlation_id, "reason": self.reason, "detail": self.detail,
            "t_dead_lettered": self.t_dead_lettered,
            "t_created": self.t_created if math.isfinite(self.t_created) else None,  # a poison body may lack it
        }


class Publisher:
    """One NATS connection and JetStream context per gateway process."""

    def __init__(self, url: str, clock: ScaledClock, scan_limit: int = 200_000):
        self.url = url
        self.clock = clock
        self.scan_limit = scan_limit
        self.nc: Any = None
        self.js: Any = None
        self.log = ConnectionLog("gateway", url)
        self.batches: BatchPublisher

    async def connect(self, timeout_s: float = 30.0) -> None:
        """Connect (retrying until ``timeout_s``) and make sure the streams exist."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.nc = await nats.connect(
                    nats_servers(self.url), max_reconnect_attempts=-1, reconnect_time_wait=0.25, connect_timeout=2,
                    allow_reconnect=True, pending_size=64 * 1024 * 1024, **self.log.callbacks(),
                )
                break
            except Exception as exc:  # noqa: BLE001 - any failure to reach the broker is retried
                if time.monotonic() > deadline:
                    raise BrokerUnavailable(f"cannot reach the broker at {self.url}: {exc}") from exc
                await asyncio.sleep(0.25)
        self.js = self.nc.jetstream()
        self.batches = BatchPublisher(self.nc)
        self.log.on_lost_hooks.append(lambda: self.batches.abandon("broker connection lost"))
        await self.batches.start()
        with contextlib.suppress(nats.js.errors.BadRequestError):  # another worker process created them first
            await ensure_streams(self.js)

    @property
    def connected(self) -> bool:
        """True while the NATS connection is up."""
        return self.nc is not None and self.nc.is_connected

    async def close(self) -> None:
        """Flush and close the connection."""
        self.log.closing = True
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):
                await self.nc.drain()
        self.nc = None

    async def publish(self, plant: str, messages: Sequence[Message], timeout_s: float) -> list[bool]:
        """Publish all ``messages`` pipelined (a request of 500 or more as atomic batches, one PubAck per batch
        of up to 1,000); return once the broker stored them all (duplicate flags).

        Raises :class:`BrokerUnavailable` if any is not acknowledged within ``timeout_s`` or is refused;
        the client then retries the whole batch and the broker drops the copies it already stored
        (Nats-Msg-Id).
        """
        if not self.connected:
            raise BrokerUnavailable("the broker connection is down")
        try:
            acks = await self.batches.publish_atomic(messages, timeout_s)
        except TimeoutError as exc:
            stored = exc.args[1].stored if len(exc.args) > 1 else 0
            raise BrokerUnavailable(str(exc.args[0]), stored) from None
        except nats.errors.Error as exc:
            raise BrokerUnavailable(f"publish failed: {exc!r}") from None
        if acks.errors:
            first = next(iter(acks.errors.values()))
            raise BrokerUnavailable(f"{len(acks.errors)} of {acks.size} not stored: {first}", acks.stored)
        return acks.duplicates

    # ------------------------------------------------------------------------------------ reading
    async def _scan(self, stream: str, subject: str, keep: Callable[[Any], bool], limit: int) -> list[Any]:
        """Messages of ``stream`` on ``subject`` (oldest first) for which ``keep`` is true."""
        return await read_messages(self.js, stream, subject, limit, keep)

    def _dead_letter(self, msg: Any) -> DeadLetter:
        headers = msg.headers or {}
        try:
            event = json.loads(msg.data)
        except ValueError:
            event = {}
        event = event if isinstance(event, dict) else {}  # a poison body may be any JSON, or none
        t_created = event.get("t_created")
        _, plant, flow = (msg.subject.split(".", 2) + ["", ""])[:3]
        return DeadLetter(
            seq=msg.metadata.sequence.stream, subject=msg.subject, txn_id=str(event.get("txn_id", "")),
            plant=plant, flow=flow, correlation_id=headers.get(HEADER_CORRELATION, ""),
            reason=headers.get(HEADER_DLQ_REASON, ""), detail=headers.get(HEADER_DLQ_DETAIL, ""),
            t_dead_lettered=self.clock.to_scenario(msg.metadata.timestamp.timestamp()),
            t_created=float(t_created) if isinstance(t_created, int | float) else math.nan, body=msg.data,
        )

    async def dead_letters(self, plant: str | None = None, limit: int | None = None) -> list[DeadLetter]:
        """Dead letters, oldest first, of one plant or all."""
        subject = f"dlq.{plant}.>" if plant else "dlq.>"
        msgs = await self._scan(DLQ_STREAM, subject, lambda m: True, limit or self.scan_limit)
        return [self._dead_letter(m) for m in msgs]

    async def dlq_count(self) -> int:
        """Messages currently in the DLQ stream."""
        info = await self.js.stream_info(DLQ_STREAM)
        return int(info.state.messages)

    async def status(self, plant: str, txn_id: str) -> dict[str, Any] | None:
        """Where ``txn_id`` of ``plant`` stands at the broker, or None if the gateway never stored it.

        One look-up of the id's last copy by subject; the DLQ is read only for an event that was stored,
        and only on its own subject, when that subject holds anything."""
        stored = await status_index.lookup(self.js, plant, txn_id)
        if stored is None:
            return None
        dead = await self._dead_letter_of(stored, txn_id)
        if dead is not None:
            return {"txn_id": txn_id, "plant": plant, "status": "dead_lettered", **dead.summary()}
        t_broker = self.clock.to_scenario(stored.time) if stored.time is not None else None
        return {
            "txn_id": txn_id, "plant": plant, "status": "stored", "stream_seq": stored.seq,
            "correlation_id": stored.correlation_id, "t_broker": t_broker,
        }

    async def _dead_letter_of(self, stored: status_index.Stored, txn_id: str) -> DeadLetter | None:
        """The dead letter of an indexed event, if the workers dead-lettered it."""
        subject = dlq_subject(stored.plant, stored.flow)
        info = await self.js.stream_info(DLQ_STREAM, subjects_filter=subject)
        if not (info.state.subjects or {}).get(subject):
            return None
        key = f"{txn_id}:dlq"
        hits = await self._scan(DLQ_STREAM, subject, lambda m: (m.headers or {}).get(HEADER_MSG_ID) == key,
                                self.scan_limit)
        return self._dead_letter(hits[-1]) if hits else None

    async def replay(
        self, select: Callable[[DeadLetter], bool], plant: str | None = None
    ) -> list[DeadLetter]:
        """Republish the selected dead letters to their event subjects, then remove them from the DLQ.

        The replayed copy gets a fresh broker key (``<txn_id>:replay:<dlq seq>``) so the broker's
        duplicate window does not swallow it; the workers' processed-key store still keys by txn_id.
        """
        chosen = [d for d in await self.dead_letters(plant) if select(d)]
        for dead in chosen:
            headers = {
                HEADER_MSG_ID: f"{dead.txn_id}:replay:{dead.seq}",
                HEADER_CORRELATION: dead.correlation_id,
                "X-Replay-Of": str(dead.seq),
            }
            # On the id's own subject: a status read finds this copy (the last one) from now on.
            await self.js.publish(event_subject(dead.plant, dead.flow, dead.txn_id), dead.body, headers=headers)
            await self.js.delete_msg(DLQ_STREAM, dead.seq)
        return chosen
