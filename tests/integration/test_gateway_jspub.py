"""The lean batch publisher: wire encoding and ack parsing, then against a real broker."""

from __future__ import annotations

import asyncio

import nats
import pytest

from integration.broker import ensure_streams
from integration.gateway.ingest import Message
from integration.gateway.jspub import (
    ATOMIC_MAX_MESSAGES,
    ATOMIC_MIN_MESSAGES,
    BatchPublisher,
    MessageTooLarge,
    _atomic_hpub,
    _duplicate,
    _hpub,
    _seq,
)
from tests.integration.gateway_support import read_stream
from tests.polling import poll


def test_hpub_frames_headers_and_body():
    frame = _hpub("events.P01.scrap", "_INBOX.x.7", "t-1", "c-1", b'{"a":1}')
    header = b"NATS/1.0\r\nNats-Msg-Id: t-1\r\nX-Correlation-Id: c-1\r\n\r\n"
    assert frame == b"HPUB events.P01.scrap _INBOX.x.7 %d %d\r\n" % (len(header), len(header) + 7) + header + \
        b'{"a":1}\r\n'


def test_newlines_cannot_inject_headers():
    frame = _hpub("s", "r", "t-1\r\nEvil: 1", "c", b"{}")
    assert b"\r\nEvil" not in frame and frame.count(b"\r\n") == 6


@pytest.mark.parametrize(
    ("ack", "seq", "dup"),
    [(b'{"stream":"EVENTS","seq":17}', 17, False), (b'{"stream":"EVENTS","seq":9,"duplicate": true}', 9, True),
     (b'{"stream":"EVENTS","seq":120,"duplicate":false}', 120, False)],
)
def test_ack_fields_are_read_from_the_json(ack, seq, dup):
    assert (_seq(ack), _duplicate(ack)) == (seq, dup)


@pytest.mark.slow
def test_batches_against_a_real_broker(broker):
    async def run():
        nc = await nats.connect(broker.url)
        await ensure_streams(nc.jetstream())
        pub = BatchPublisher(nc)
        msgs = [Message("events.P09.scrap", f"jp-{i}", "c", b"{}") for i in range(300)]
        first = await pub.publish(msgs, 5)
        again = await pub.publish(msgs[:10], 5)
        lost = await pub.publish([Message("nowhere.P09", "jp-x", "c", b"{}")], 5)
        with pytest.raises(MessageTooLarge, match=r"body\[1\]"):
            await pub.publish([msgs[0], Message("events.P09.scrap", "big", "c", b"x" * nc.max_payload)], 5)
        await nc.close()
        return first, again, lost

    first, again, lost = asyncio.run(run())
    assert first.stored == 300 and not any(first.duplicates) and len(set(first.seqs)) == 300
    assert again.duplicates == [True] * 10 and again.seqs == first.seqs[:10]
    assert lost.stored == 0 and lost.errors


def test_hpub_without_a_reply_subject_asks_for_no_ack():
    frame = _hpub("$KV.EVENT_INDEX.P01.t-1", "", "t-1@7", "c-1", b"7")
    header = b"NATS/1.0\r\nNats-Msg-Id: t-1@7\r\nX-Correlation-Id: c-1\r\n\r\n"
    assert frame == b"HPUB $KV.EVENT_INDEX.P01.t-1 %d %d\r\n" % (len(header), len(header) + 1) + header + b"7\r\n"


@pytest.mark.slow
def test_unacknowledged_messages_are_stored_in_order(broker):
    async def run():
        nc = await nats.connect(broker.url)
        await ensure_streams(nc.jetstream())
        pub = BatchPublisher(nc)
        await pub.publish_unacknowledged([Message("events.P08.scrap", f"un-{i}", "c", b"{}") for i in range(50)], 5)
        await nc.close()

    asyncio.run(run())
    stored = poll(lambda: read_stream(broker.url, "events.P08.>"), 10)
    assert [m.headers["Nats-Msg-Id"] for m in stored] == [f"un-{i}" for i in range(50)]


def test_atomic_frames_carry_the_batch_and_only_the_commit_asks_for_an_ack():
    middle = _atomic_hpub("events.P01.scrap.t-1", "_INBOX.x.7", "t-1", "c-1", b"{}", "_INBOX.x.7", 1, False)
    last = _atomic_hpub("events.P01.scrap.t-2", "_INBOX.x.7", "t-2", "c-1", b"{}", "_INBOX.x.7", 2, True)
    assert middle.startswith(b"HPUB events.P01.scrap.t-1 ") and b"_INBOX.x.7 " not in middle.split(b"\r\n")[0]
    assert b"Nats-Batch-Id: _INBOX.x.7\r\nNats-Batch-Sequence: 1\r\n\r\n" in middle
    assert last.startswith(b"HPUB events.P01.scrap.t-2 _INBOX.x.7 ")
    assert b"Nats-Msg-Id: t-2\r\n" in last and b"Nats-Batch-Sequence: 2\r\nNats-Batch-Commit: 1\r\n\r\n" in last


@pytest.mark.slow
def test_atomic_batches_store_everything_once_and_report_duplicates(broker):
    """One PubAck per batch of at most ATOMIC_MAX_MESSAGES; a batch holding copies the broker already has is
    refused whole by the server and published again message by message, which stores only the new ones."""
    async def run():
        nc = await nats.connect(broker.url)
        await ensure_streams(nc.jetstream())
        pub = BatchPublisher(nc)
        msgs = [Message(f"events.P07.scrap.at-{i}", f"at-{i}", "c", b"{}") for i in range(ATOMIC_MAX_MESSAGES + 5)]
        first = await pub.publish_atomic(msgs, 10)
        fresh = [Message(f"events.P07.scrap.new-{i}", f"new-{i}", "c", b"{}") for i in range(ATOMIC_MIN_MESSAGES)]
        mixed = await pub.publish_atomic(msgs[-3:] + fresh, 10)
        small = await pub.publish_atomic([Message("events.P07.scrap.s-1", "s-1", "c", b"{}")] * 2, 10)
        await nc.close()
        return first, mixed, small, pub.atomic

    first, mixed, small, atomic = asyncio.run(run())
    assert atomic and first.stored == ATOMIC_MAX_MESSAGES + 5 and not first.errors and not any(first.duplicates)
    assert first.seqs == list(range(first.seqs[0], first.seqs[0] + ATOMIC_MAX_MESSAGES + 5))
    assert mixed.duplicates == [True] * 3 + [False] * ATOMIC_MIN_MESSAGES and not mixed.errors
    assert small.duplicates == [False, True]  # below ATOMIC_MIN_MESSAGES: one PubAck per message
    stored = poll(lambda: read_stream(broker.url, "events.P07.>"), 10)
    ids = [m.headers["Nats-Msg-Id"] for m in stored]
    want = [f"at-{i}" for i in range(ATOMIC_MAX_MESSAGES + 5)] + [f"new-{i}" for i in range(ATOMIC_MIN_MESSAGES)]
    assert ids == want + ["s-1"]  # each once, in order


@pytest.mark.slow
def test_a_stream_without_atomic_batches_falls_back_to_per_message_acks(jetstream):
    async def run():
        from nats.js.api import StorageType, StreamConfig

        nc = await nats.connect(jetstream.url)
        await nc.jetstream().add_stream(StreamConfig(name="EVENTS", subjects=["events.>"], storage=StorageType.FILE))
        pub = BatchPublisher(nc)
        msgs = [Message(f"events.P06.scrap.o-{i}", f"o-{i}", "c", b"{}") for i in range(ATOMIC_MIN_MESSAGES)]
        acks = await pub.publish_atomic(msgs, 5)
        await nc.close()
        return acks, pub.atomic

    acks, atomic = asyncio.run(run())
    assert acks.stored == ATOMIC_MIN_MESSAGES and not acks.errors and not atomic

