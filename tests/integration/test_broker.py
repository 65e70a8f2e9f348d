"""The embedded NATS JetStream server and the stream layout."""

from __future__ import annotations

import asyncio
import socket
import time

import nats
import pytest
from nats.js.api import StorageType

from integration.broker import (
    DLQ_STREAM,
    EVENTS_STREAM,
    HEADER_DLQ_REASON,
    BrokerError,
    EmbeddedNats,
    broker_time,
    dead_letter,
    dlq_subject,
    ensure_streams,
    event_headers,
    event_subject,
    find_nats_server,
)
from integration.canonical import CanonicalEvent
from kernel.clock import ScaledClock
from tests.integration.gateway_support import read_stream

pytestmark = pytest.mark.slow


def _event(txn: str, plant: str = "P01") -> CanonicalEvent:
    return CanonicalEvent(txn_id=txn, correlation_id=f"c-{txn}", flow="scrap", plant=plant, item="FG-100",
                          qty=1, unit="EA", t_created=3.0)


async def _publish(url: str, events: list[CanonicalEvent]) -> list[bool]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_streams(js)
    acks = [await js.publish(event_subject(e.plant, e.flow, e.txn_id), e.model_dump_json().encode(),
                             headers=event_headers(e.txn_id, e.correlation_id)) for e in events]
    await nc.close()
    return [a.duplicate is True for a in acks]


def test_binary_is_found_next_to_the_interpreter():
    assert find_nats_server().name == "nats-server"


def test_streams_have_the_contracted_layout(broker):
    async def run():
        nc = await nats.connect(broker.url)
        js = nc.jetstream()
        await ensure_streams(js)
        await ensure_streams(js)  # idempotent
        events, dlq = await js.stream_info(EVENTS_STREAM), await js.stream_info(DLQ_STREAM)
        await nc.close()
        return events.config, dlq.config

    events, dlq = asyncio.run(run())
    assert events.subjects == ["events.>"] and dlq.subjects == ["dlq.>"]
    assert events.storage == StorageType.FILE and dlq.storage == StorageType.FILE
    assert events.duplicate_window == pytest.approx(120.0)


def test_msg_id_deduplicates_and_t_broker_is_scenario_time(broker):
    clock = ScaledClock(time.time() - 10, speed=60)  # scenario time is ~600 s now
    before = clock.now()
    dupes = asyncio.run(_publish(broker.url, [_event("d-1"), _event("d-1"), _event("d-2")]))
    after = clock.now()
    assert dupes == [False, True, False]
    msgs = [m for m in read_stream(broker.url) if m.headers["Nats-Msg-Id"].startswith("d-")]
    assert [m.headers["Nats-Msg-Id"] for m in msgs] == ["d-1", "d-2"]
    assert CanonicalEvent.model_validate_json(msgs[0].data) == _event("d-1")
    assert msgs[0].headers["X-Correlation-Id"] == "c-d-1"
    assert before - 1 <= broker_time(msgs[0], clock) <= after + 1


def test_dead_letter_carries_reason(broker):
    async def run():
        nc = await nats.connect(broker.url)
        js = nc.jetstream()
        await ensure_streams(js)
        e = _event("dl-1", "P02")
        await dead_letter(js, e.model_dump_json().encode(), "P02", "scrap", e.txn_id, e.correlation_id,
                          "unmapped_item", "item FG-100 has no mapping")
        await nc.close()

    asyncio.run(run())
    msgs = read_stream(broker.url, "dlq.>", DLQ_STREAM)
    assert [(m.subject, m.headers[HEADER_DLQ_REASON]) for m in msgs] == [(dlq_subject("P02", "scrap"),
                                                                         "unmapped_item")]


def test_streams_survive_kill_and_restart(tmp_path):
    server = EmbeddedNats(tmp_path / "nats", die_with_parent=True)
    server.start()
    port = server.port
    asyncio.run(_publish(server.url, [_event(f"k-{i}") for i in range(50)]))
    server.kill()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    server.start()
    assert server.port == port
    assert len(read_stream(server.url)) == 50
    server.stop()


def test_context_manager_and_sync_always(tmp_path):
    with EmbeddedNats(tmp_path / "n", sync_always=True, die_with_parent=True) as server:
        assert asyncio.run(_publish(server.url, [_event("s-1")])) == [False]
        assert server.proc is not None
    assert server.proc is None


def test_a_taken_fixed_port_is_a_clear_error(tmp_path):
    with EmbeddedNats(tmp_path / "a", die_with_parent=True) as first:
        second = EmbeddedNats(tmp_path / "b", port=first.port, die_with_parent=True)
        with pytest.raises(BrokerError, match=f"127.0.0.1:{first.port}"):
            second.start(timeout_s=5)
        assert second.proc is None
