"""A lean JetStream publisher for batches: one reply subscription, one future per batch, not per message.

``nats-py``'s ``publish_async`` creates a future, a random token and a parsed ``PubAck`` object per
message; at tens of thousands of events a second that bookkeeping, not the broker, is the limit on
two cores. Here every message of a batch gets the reply subject ``<inbox>.<n>``; the reply handler
finds the batch by ``n``, reads the few fields the gateway needs straight from the PubAck JSON and
resolves the batch's one future when the last ack is in. Semantics are those of JetStream publish:
a message counts as stored only on a PubAck without ``error``.

:meth:`BatchPublisher.publish_atomic` goes further for large requests where the stream allows it
(``allow_atomic``, nats-server 2.12+): a batch is one JetStream atomic batch, so the broker stores all of it or none and
sends ONE PubAck, on the commit, instead of one per message. De-duplication by ``Nats-Msg-Id`` still
holds inside a batch, but the server refuses a whole batch that holds a copy it already has (error
10201); such a batch, and any other refused one (nothing of it was stored), is published again message
by message, which stores the new ones and reports the duplicates.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from integration.broker import HEADER_CORRELATION, HEADER_MSG_ID, can_write_raw, write_raw
from integration.nats_direct import deliver_direct

# JetStream atomic batch publish (ADR-50): headers, and the server's default ceiling of messages per batch.
BATCH_ID, BATCH_SEQUENCE, BATCH_COMMIT = "Nats-Batch-Id", "Nats-Batch-Sequence", "Nats-Batch-Commit"
ATOMIC_MAX_MESSAGES = 1000
# Smaller requests keep one PubAck per message: the broker spends a fixed ~2 ms of CPU per atomic batch
# (measured with nats-server 2.15.1: +10 µs an event at 200, +105 at 20, +2 at 1,000), which outweighs
# the ~12 µs an event the gateway saves below about 500 events (bench/RESULTS.md).
ATOMIC_MIN_MESSAGES = 500
ATOMIC_DISABLED = 10174  # err_code: the stream does not allow atomic batches (created by an older client)


@dataclass(slots=True)
class BatchAcks:
    """Acks of one published batch: stream sequence and duplicate flag per message, or the errors."""

    size: int
    future: asyncio.Future[None]
    seqs: list[int] = field(default_factory=list)
    duplicates: list[bool] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    pending: int = 0
    abandoned: bool = False  # failed for a lost connection, not refused by the broker

    def __post_init__(self) -> None:
        self.seqs = [0] * self.size
        self.duplicates = [False] * self.size
        self.pending = self.size

    @property
    def stored(self) -> int:
        """Messages acknowledged without error so far."""
        return self.size - self.pending - len(self.errors)


class MessageTooLarge(ValueError):
    """An event whose body exceeds the broker's max payload; ``index`` is its place in the batch."""

    def __init__(self, index: int, size: int, limit: int):
        self.index = index
        super().__init__(f"body[{index}]: event of {size} bytes exceeds the broker's limit of {limit} bytes")


def _seq(data: bytes) -> int:
    start = data.find(b'"seq":')
    if start < 0:
        return 0
    start += 6
    end = start
    while end < len(data) and 48 <= data[end] <= 57:
        end += 1
    return int(data[start:end] or b"0")


_NO_NEWLINES = str.maketrans({"\r": " ", "\n": " "})


def _hpub(subject: str, reply: str, msg_id: str, correlation_id: str, body: bytes, extra: str = "") -> bytes:
    """One NATS ``HPUB`` command carrying the broker de-duplication key and the correlation id (and
    ``extra`` header lines, each ending in CRLF)."""
    if "\r" in msg_id or "\n" in msg_id or "\r" in correlation_id or "\n" in correlation_id:
        msg_id, correlation_id = msg_id.translate(_NO_NEWLINES), correlation_id.translate(_NO_NEWLINES)
    header = f"NATS/1.0\r\n{HEADER_MSG_ID}: {msg_id}\r\n{HEADER_CORRELATION}: {correlation_id}\r\n{extra}\r\n".encode()
    reply = f"{reply} " if reply else ""  # no reply subject: JetStream stores it and sends no PubAck
    return b"%s%s%s\r\n" % (
        f"HPUB {subject} {reply}{len(header)} {len(header) + len(body)}\r\n".encode(), header, body
    )


def _atomic_hpub(subject: str, reply: str, msg_id: str, correlation_id: str, body: bytes, batch: str, seq: int,
                 commit: bool) -> bytes:
    """One ``HPUB`` of an atomic batch: the event's headers plus the batch id, its place and, on the
    last message only, the commit marker (the only one with a reply subject, so the only PubAck)."""
    marker = f"{BATCH_COMMIT}: 1\r\n" if commit else ""
    return _hpub(subject, reply if commit else "", msg_id, correlation_id, body,
                 f"{BATCH_ID}: {batch}\r\n{BATCH_SEQUENCE}: {seq}\r\n{marker}")


def _error(data: bytes) -> str:
    """The reason of a refused PubAck: no responders (an empty 503 status) or a JetStream API error."""
    try:
        return json.loads(data)["error"].get("description", "error") if data else "no stream"
    except (ValueError, KeyError, AttributeError):
        return data.decode(errors="replace") or "no stream"


def _duplicate(data: bytes) -> bool:
    at = data.find(b'"duplicate"')  # the server writes '"duplicate": true'
    return at >= 0 and data[at + 11:].lstrip(b": ").startswith(b"true")


class BatchPublisher:
    """Publishes batches of messages to JetStream over one NATS connection."""

    def __init__(self, nc: Any):
        self.nc = nc
        self._prefix = ""
        self._batch_tag = ""
        self._inflight: dict[int, tuple[BatchAcks, int]] = {}
        # Atomic batches waiting for their commit's PubAck: (acks, first index, message count).
        self._commits: dict[int, tuple[BatchAcks, int, int]] = {}
        self._counter = itertools.count(1)
        self._sub: Any = None
        self.atomic = True  # cleared when the stream refuses atomic batches; every batch is then per message

    async def start(self) -> None:
        """Subscribe to the reply subjects (idempotent)."""
        if self._sub is None:
            self._prefix = f"{self.nc.new_inbox()}."
            # Atomic batch ids: short (the broker stores them with every message), unique across processes.
            self._batch_tag = base64.urlsafe_b64encode(os.urandom(6)).decode()
            self._sub = await self.nc.subscribe(self._prefix + "*", cb=self._on_ack)
            deliver_direct(self.nc, self._sub, self._ack)  # acks skip nats-py's per-message Msg and task switch

    async def _on_ack(self, msg: Any) -> None:
        self._ack(msg)

    def _ack(self, msg: Any) -> None:
        n = int(msg.subject[len(self._prefix):])
        entry = self._inflight.pop(n, None)
        if entry is None:
            commit = self._commits.pop(n, None)
            if commit is not None:
                self._commit_ack(msg.data, *commit)
            return  # else the batch gave up waiting
        acks, i = entry
        data = msg.data
        if not data or b'"error"' in data:  # no responders (empty 503 status) or a JetStream API error
            acks.errors[i] = _error(data)
        else:
            acks.seqs[i] = _seq(data)
            acks.duplicates[i] = _duplicate(data)
        acks.pending -= 1
        if acks.pending == 0 and not acks.future.done():
            acks.future.set_result(None)

    def _commit_ack(self, data: bytes, acks: BatchAcks, first: int, count: int) -> None:
        """The one PubAck of an atomic batch: all ``count`` messages from ``first`` stored, or none."""
        if not data or b'"error"' in data:
            reason = _error(data)
            if b'"err_code":%d' % ATOMIC_DISABLED in data:
                self.atomic = False
            for i in range(first, first + count):
                acks.errors[i] = reason
        else:  # the server stores a committed batch as one run of sequences, ending at the acked one
            last = _seq(data)
            for k, i in enumerate(range(first, first + count)):
                acks.seqs[i] = last - count + 1 + k
        acks.pending -= count
        if acks.pending == 0 and not acks.future.done():
            acks.future.set_result(None)

    def abandon(self, reason: str) -> None:
        """Fail every batch still waiting for PubAcks: the connection that would carry them is gone (e.g. a
        cluster node was killed), so their requests answer 503 now instead of after the publish timeout;
        the client's retry is de-duplicated by the broker."""
        inflight, self._inflight = self._inflight, {}
        commits, self._commits = self._commits, {}
        for acks, first, count in [(a, i, 1) for a, i in inflight.values()] + list(commits.values()):
            acks.abandoned = True
            for i in range(first, first + count):
                acks.errors[i] = reason
            acks.pending -= count
            if acks.pending == 0 and not acks.future.done():
                acks.future.set_result(None)

    async def publish_unacknowledged(self, messages: Sequence[Any], timeout_s: float) -> None:
        """Send ``messages`` to JetStream without asking for PubAcks (one buffer), then one PING/PONG.

        The PONG means the broker has received them (it stores a connection's messages in order), so a
        crash of this process afterwards cannot lose them; raises ``TimeoutError`` without a PONG."""
        if can_write_raw(self.nc):
            await write_raw(self.nc, b"".join(_hpub(m.subject, "", m.txn_id, m.correlation_id, m.body)
                                              for m in messages))
        else:
            for m in messages:
                await self.nc.publish(m.subject, m.body,
                                      headers={HEADER_MSG_ID: m.txn_id, HEADER_CORRELATION: m.correlation_id})
        await self.nc.flush(timeout_s)

    async def _start_checked(self, messages: Sequence[Any]) -> None:
        """Connect if needed and refuse a batch holding a message the broker would not take."""
        await self.start()
        limit = self.nc.max_payload - 1024  # room for the headers
        for i, m in enumerate(messages):
            if len(m.body) > limit:
                raise MessageTooLarge(i, len(m.body), limit)

    async def publish(self, messages: Sequence[Any], timeout_s: float) -> BatchAcks:
        """Publish ``messages`` (``subject``, ``body``, ``txn_id``, ``correlation_id``); wait for every ack.

        Returns the batch's acks; raises ``TimeoutError`` (acks so far in ``exc.args[1]``) if some ack
        does not arrive within ``timeout_s``.
        """
        await self._start_checked(messages)
        acks = BatchAcks(len(messages), asyncio.get_running_loop().create_future())
        if not messages:
            return acks
        inflight, prefix = self._inflight, self._prefix
        numbers = []
        try:
            if can_write_raw(self.nc):
                # Fast path: the whole batch as one pre-encoded buffer of HPUB commands. Uses the client's
                # internal write queue (nats-py 2.x), which keeps its ordering and reconnect buffering.
                commands = []
                for i, m in enumerate(messages):
                    n = next(self._counter)
                    numbers.append(n)
                    inflight[n] = (acks, i)
                    commands.append(_hpub(m.subject, f"{prefix}{n}", m.txn_id, m.correlation_id, m.body))
                await write_raw(self.nc, b"".join(commands))
            else:
                for i, m in enumerate(messages):
                    n = next(self._counter)
                    numbers.append(n)
                    inflight[n] = (acks, i)
                    headers = {HEADER_MSG_ID: m.txn_id, HEADER_CORRELATION: m.correlation_id}
                    await self.nc.publish(m.subject, m.body, reply=f"{prefix}{n}", headers=headers)
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(acks.future)
        except BaseException as exc:
            for n in numbers:
                inflight.pop(n, None)
            if isinstance(exc, TimeoutError):
                raise TimeoutError(f"{acks.pending} of {acks.size} PubAcks missing after {timeout_s:.1f} s",
                                   acks) from None
            raise
        return acks

    async def publish_atomic(self, messages: Sequence[Any], timeout_s: float) -> BatchAcks:
        """Like :meth:`publish`, with one PubAck per atomic batch of at most ``ATOMIC_MAX_MESSAGES``
        (for requests of ``ATOMIC_MIN_MESSAGES`` or more; smaller ones go through :meth:`publish`).

        A refused batch (it held a copy the broker already has, or the stream does not allow atomic
        batches, or the server had too many batches open) stored nothing, so it is published again
        message by message; the acks then say which messages were duplicates. A missing commit ack
        raises ``TimeoutError`` as :meth:`publish` does (the client's retry is de-duplicated)."""
        if not self.atomic or not can_write_raw(self.nc) or len(messages) < ATOMIC_MIN_MESSAGES:
            return await self.publish(messages, timeout_s)
        await self._start_checked(messages)
        acks = BatchAcks(len(messages), asyncio.get_running_loop().create_future())
        prefix, numbers, commands = self._prefix, [], []
        for first in range(0, len(messages), ATOMIC_MAX_MESSAGES):
            chunk = messages[first:first + ATOMIC_MAX_MESSAGES]
            n = next(self._counter)
            numbers.append(n)
            self._commits[n] = (acks, first, len(chunk))
            reply, batch, last = f"{prefix}{n}", f"{self._batch_tag}{n}", len(chunk)
            commands += [_atomic_hpub(m.subject, reply, m.txn_id, m.correlation_id, m.body, batch, k, k == last)
                         for k, m in enumerate(chunk, 1)]
        try:
            await write_raw(self.nc, b"".join(commands))
            async with asyncio.timeout(timeout_s):
                await asyncio.shield(acks.future)
        except BaseException as exc:
            for n in numbers:
                self._commits.pop(n, None)
            if isinstance(exc, TimeoutError):
                raise TimeoutError(f"{acks.pending} of {acks.size} PubAcks missing after {timeout_s:.1f} s",
                                   acks) from None
            raise
        if acks.errors and not acks.abandoned:  # nothing of a refused batch was stored: per message now
            again = sorted(acks.errors)
            redo = await self.publish([messages[i] for i in again], timeout_s)
            for j, i in enumerate(again):
                acks.seqs[i], acks.duplicates[i] = redo.seqs[j], redo.duplicates[j]
            acks.errors = {again[j]: e for j, e in redo.errors.items()}
            acks.pending = redo.pending
        return acks
