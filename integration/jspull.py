"""A lean JetStream pull consumer: messages through one inbox in bulk, acknowledgements in bulk.

``nats-py``'s ``PullSubscription.fetch`` waits for every message with its own timeout task and
``Msg.ack`` sends one command per message; at ten thousand messages a second that bookkeeping, not
the broker, is the worker's limit on two cores. Here one pull request
(``$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>``) is outstanding at a time; its messages arrive on
one inbox subscription and are handed to the caller in whatever bulk has queued up, and the acks of a
batch leave as one buffer of ``PUB`` commands. Semantics are those of a JetStream pull consumer with
explicit acks: a message is done only when its ack reaches the server; anything not acknowledged
within the consumer's ``ack_wait`` is delivered again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from typing import Any

from integration.broker import can_write_raw, write_raw
from integration.nats_direct import deliver_direct, stop_direct

ACK = b""  # an empty payload on the ack subject is "+ACK"
IN_PROGRESS = b"+WPI"


class BulkPuller:
    """Pulls from a durable JetStream consumer over one NATS connection.

    ``await next_batch()`` returns every message that arrived since the last call (waiting for at
    least one); a background task keeps one pull request of ``batch`` messages open, re-issuing it
    when it is filled or the server ends it (``expires`` wall seconds with nothing to deliver, or the
    consumer's ``max_ack_pending`` reached)."""

    def __init__(self, nc: Any, stream: str, consumer: str, batch: int = 500, expires: float = 0.5):
        self.nc = nc
        self.batch, self.expires = batch, expires
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = ""
        self._sub: Any = None
        self._queue: list[Any] = []
        self._arrived = asyncio.Event()
        self._request_over = asyncio.Event()
        self._received = 0  # messages delivered for the open request
        self._puller: asyncio.Task | None = None
        self._stopping = False

    async def start(self) -> None:
        """Subscribe the inbox and start requesting (idempotent)."""
        if self._sub is None:
            self._inbox = self.nc.new_inbox()
            self._sub = await self.nc.subscribe(self._inbox, cb=self._on_message)
            # Stream messages (ack subject as reply) skip nats-py's per-message Msg, header dict and task
            # switch; status messages that end a request still come through ``_on_message``.
            deliver_direct(self.nc, self._sub, self._take, b"$JS.ACK.")
            self._stopping = False
            self._puller = asyncio.create_task(self._keep_requesting())

    async def stop(self) -> None:
        """Stop requesting; messages of a request still open are redelivered after ``ack_wait``."""
        if self._puller is not None:
            # The flag ends the loop even when Python 3.11's wait_for swallows the cancellation (it does
            # when the awaited event is set in the same turn).
            self._stopping = True
            self._request_over.set()
            self._puller.cancel()
            await asyncio.gather(self._puller, return_exceptions=True)
            self._puller = None
        if self._sub is not None:
            stop_direct(self.nc, self._sub)
            with contextlib.suppress(Exception):  # the connection may already be gone
                await self._sub.unsubscribe()
            self._sub = None

    async def next_batch(self) -> list[Any]:
        """Every message that has arrived, oldest first; waits until there is at least one."""
        while not self._queue:
            self._arrived.clear()
            await self._arrived.wait()
        batch, self._queue = self._queue, []
        return batch

    def _take(self, msg: Any) -> None:
        self._queue.append(msg)
        self._arrived.set()
        self._received += 1
        if self._received >= self.batch:
            self._request_over.set()

    async def _on_message(self, msg: Any) -> None:
        if msg.reply and msg.reply.startswith("$JS.ACK."):
            self._take(msg)
        else:
            # A status without data ends the request: 404/408 (nothing to deliver before it expired),
            # 409 (consumer deleted, max_ack_pending reached, ...). 100 (heartbeat) is not requested.
            self._request_over.set()

    async def _keep_requesting(self) -> None:
        body = json.dumps({"batch": self.batch, "expires": int(self.expires * 1e9)}).encode()
        while not self._stopping:
            self._request_over.clear()
            self._received = 0
            try:
                await self.nc.publish(self._next_subject, body, reply=self._inbox)
            except Exception:  # noqa: BLE001 - reconnecting: ask again shortly
                await asyncio.sleep(0.25)
                continue
            # The server answers within ``expires``; a request lost to a reconnect is re-issued after it.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.expires + 1.0):
                    await self._request_over.wait()


def nak_after(seconds: float) -> bytes:
    """The ack payload that asks JetStream to deliver a message again after ``seconds`` (a NAK with delay)."""
    return b'-NAK {"delay": %d}' % int(seconds * 1e9)


async def acknowledge(nc: Any, msgs: Sequence[Any], payload: bytes = ACK) -> None:
    """Send ``payload`` (ack, or ``IN_PROGRESS``) for every message, as one write when the client allows.

    A lost ack only means a redelivery, so failures are left to JetStream's ``ack_wait``."""
    replies = [m.reply for m in msgs if m.reply]
    if not replies:
        return
    if can_write_raw(nc):
        tail = b" %d\r\n%s\r\n" % (len(payload), payload)
        await write_raw(nc, b"".join(b"PUB " + r.encode() + tail for r in replies))
        return
    for reply in replies:
        await nc.publish(reply, payload)
