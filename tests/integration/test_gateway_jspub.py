"""The lean batch publisher: wire encoding and ack parsing, then against a real broker."""

from __future__ import annotations

import asyncio

import nats
import pytest

from integration.broker import ensure_streams
from integration.gateway.ingest import Message
from integration.gateway.jspub import BatchPublisher, MessageTooLarge, _duplicate, _hpub, _seq
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
