"""The one place that touches nats-py's write queue is fenced: a connection lacking any private name it
uses gets its acks through the public API, and they still stick."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from integration.broker import RAW_WRITE_INTERNALS, can_write_raw
from integration.jspull import BulkPuller, acknowledge

STREAM = "RAWTEST"


class Without:
    """A real connection as a nats-py without the private name ``missing`` would show it."""

    def __init__(self, nc, missing: str):
        self.nc, self.missing = nc, missing

    def __getattr__(self, name: str):
        if name == self.missing:
            raise AttributeError(name)
        return getattr(self.nc, name)


async def acks_stick(url: str, consumer: str, missing: str = "") -> tuple[bool, int, int]:
    """Publish 50 messages, pull them and acknowledge them over a connection lacking ``missing``;
    (raw path taken?, acks pending, redelivered)."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name=STREAM, subjects=[f"{STREAM.lower()}.>"]))
    try:
        await js.add_consumer(STREAM, ConsumerConfig(durable_name=consumer, ack_policy=AckPolicy.EXPLICIT,
                                                     ack_wait=30.0))
        for i in range(50):
            await js.publish(f"{STREAM.lower()}.x", str(i).encode())
        acker = Without(nc, missing) if missing else nc
        raw = can_write_raw(acker)
        puller = BulkPuller(nc, STREAM, consumer, batch=50, expires=0.2)
        await puller.start()
        msgs: list = []
        while len(msgs) < 50:
            msgs += await asyncio.wait_for(puller.next_batch(), 10)
        await acknowledge(acker, msgs)
        await puller.stop()
        for _ in range(200):  # acks travel asynchronously: poll the consumer's state
            info = await js.consumer_info(STREAM, consumer)
            if info.num_ack_pending == 0:
                break
            await asyncio.sleep(0.05)
        return raw, info.num_ack_pending, info.num_redelivered
    finally:
        await js.delete_stream(STREAM)
        await nc.close()


def test_the_raw_path_is_used_while_nats_py_has_its_internals(broker):
    assert asyncio.run(acks_stick(broker.url, "raw")) == (True, 0, 0)


@pytest.mark.parametrize("internal", RAW_WRITE_INTERNALS)
def test_without_a_private_name_acks_go_through_the_public_api(broker, internal):
    assert asyncio.run(acks_stick(broker.url, f"public{internal}", missing=internal)) == (False, 0, 0)
