"""The lean pull consumer against a real broker: bulk hand-over, acks that stick, redelivery, re-requests."""

from __future__ import annotations

import asyncio
import contextlib

import nats
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from integration.jspull import IN_PROGRESS, BulkPuller, acknowledge, nak_after

STREAM, SUBJECT = "PULLTEST", "pt.>"


async def _setup(url: str, consumer: str, ack_wait: float = 30.0):
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=[SUBJECT]))
    await js.add_consumer(STREAM, ConsumerConfig(durable_name=consumer, ack_policy=AckPolicy.EXPLICIT,
                                                 ack_wait=ack_wait, max_ack_pending=10_000))
    return nc, js


async def _collect(puller: BulkPuller, n: int, timeout: float = 10.0) -> list[list]:
    """Batches from ``next_batch`` until ``n`` messages arrived (within ``timeout``)."""
    batches: list[list] = []

    async def run() -> None:
        while sum(map(len, batches)) < n:
            batches.append(await puller.next_batch())

    await asyncio.wait_for(run(), timeout)
    return batches


def test_messages_arrive_in_bulk_in_stream_order_and_acks_stick(broker):
    async def run():
        nc, js = await _setup(broker.url, "bulk")
        for i in range(1200):
            await js.publish(f"pt.{i % 3}", str(i).encode(), headers={"Nats-Msg-Id": f"m-{i}"})
        puller = BulkPuller(nc, STREAM, "bulk", batch=500, expires=0.2)
        await puller.start()
        batches = await _collect(puller, 1200)
        msgs = [m for b in batches for m in b]
        await acknowledge(nc, msgs)
        await puller.stop()
        for _ in range(100):  # the acks travel asynchronously: poll the consumer's state
            info = await js.consumer_info(STREAM, "bulk")
            if info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.05)
        await js.delete_stream(STREAM)
        await nc.close()
        return batches, msgs, info

    batches, msgs, info = asyncio.run(run())
    assert [int(m.data) for m in msgs] == list(range(1200))
    assert len(batches) < 1200 / 10  # handed over in bulk, not one by one
    assert msgs[0].headers["Nats-Msg-Id"] == "m-0"
    assert info.num_ack_pending == 0 and info.num_pending == 0 and info.num_redelivered == 0


def test_unacknowledged_messages_come_back_unless_kept_in_progress(broker):
    async def run():
        nc, js = await _setup(broker.url, "redo", ack_wait=1.0)
        for i in range(3):
            await js.publish("pt.x", str(i).encode())
        puller = BulkPuller(nc, STREAM, "redo", batch=10, expires=0.2)
        await puller.start()
        first = [m for b in await _collect(puller, 3) for m in b]
        await acknowledge(nc, first[:1])  # 0 done; 1 forgotten; 2 still being worked on
        again: list = []
        loop = asyncio.get_running_loop()
        end = loop.time() + 3.0  # three times ack_wait
        while loop.time() < end:
            await acknowledge(nc, first[2:], IN_PROGRESS)
            with contextlib.suppress(TimeoutError):
                again += await asyncio.wait_for(puller.next_batch(), 0.3)
        await puller.stop()
        await js.delete_stream(STREAM)
        await nc.close()
        return again

    again = asyncio.run(run())
    assert {m.data for m in again} == {b"1"}  # only the forgotten one, redelivered (maybe more than once)
    assert all(m.metadata.num_delivered >= 2 for m in again)


def test_a_delayed_nak_brings_a_message_back_long_before_the_ack_wait(broker):
    async def run():
        nc, js = await _setup(broker.url, "nak", ack_wait=30.0)
        await js.publish("pt.n", b"n")
        puller = BulkPuller(nc, STREAM, "nak", batch=10, expires=0.2)
        await puller.start()
        loop = asyncio.get_running_loop()
        first = [m for b in await _collect(puller, 1) for m in b]
        sent = loop.time()
        await acknowledge(nc, first, nak_after(0.3))
        again = [m for b in await _collect(puller, 1, timeout=10.0) for m in b]
        waited = loop.time() - sent
        await acknowledge(nc, again)
        await puller.stop()
        await js.delete_stream(STREAM)
        await nc.close()
        return again, waited

    again, waited = asyncio.run(run())
    assert [m.data for m in again] == [b"n"] and again[0].metadata.num_delivered == 2
    assert 0.25 <= waited < 10.0  # the NAK's delay, not the consumer's 30 s ack wait


def test_requests_are_renewed_while_the_stream_is_empty(broker):
    async def run():
        nc, js = await _setup(broker.url, "idle")
        puller = BulkPuller(nc, STREAM, "idle", batch=5, expires=0.05)
        await puller.start()
        await asyncio.sleep(0.5)  # ten request lifetimes pass with nothing to deliver
        await js.publish("pt.late", b"late")
        got = await _collect(puller, 1, timeout=5.0)
        await puller.stop()
        await js.delete_stream(STREAM)
        await nc.close()
        return got

    assert [m.data for b in asyncio.run(run()) for m in b] == [b"late"]
