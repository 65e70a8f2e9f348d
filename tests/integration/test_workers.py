"""Workers against a real nats-server and a real (tiny) HTTP ERP: exactly-once posting, retries,
circuit breaker, dead letters, per-lot ordering and the durable processed-key store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import nats
import pytest

from integration.broker import DLQ_STREAM, ensure_streams, event_headers
from integration.erp_client import ErpClient
from integration.sqlite import read_rows
from integration.worker_faults import write_ack_loss
from integration.workers import WorkerConfig, parse_erp_urls
from integration.workers.config import CONSUMER_ACK_WAIT_FLOOR
from kernel.routing import Routing
from scenarios.loader import parse_scenario
from tests.integration.workers_support import SCENARIO, deliveries, event, publish, running_worker
from tests.polling import until

pytestmark = pytest.mark.anyio


def test_router_follows_rollout_waves():
    spec = dict(SCENARIO, landscape=dict(SCENARIO["landscape"], cloud_erp={"kind": "cloud"}),
                rollout={"waves": [{"name": "w1", "at": "1h", "plants": ["P02"], "erp": "cloud"}]})
    router = Routing.of(parse_scenario(spec))
    assert router.target("P02", 3599) == "legacy"
    assert router.target("P02", 3600) == "cloud"
    assert router.target("P01", 7200) == "legacy"
    assert router.target("P99", 0) is None
    assert router.kinds() == {"legacy", "cloud"}


def test_config_names_missing_erp_url(tmp_path: Path):
    spec = dict(SCENARIO, landscape=dict(SCENARIO["landscape"], cloud_erp={"kind": "cloud"}),
                rollout={"waves": [{"name": "w1", "at": "1h", "plants": ["P02"], "erp": "cloud"}]})
    with pytest.raises(ValueError, match="--erp cloud="):
        WorkerConfig("nats://x", parse_scenario(spec), {"legacy": "http://x"}, tmp_path, 0.0, 60.0)
    with pytest.raises(ValueError, match="KIND=URL"):
        parse_erp_urls(["legacy:http://x"])
    assert parse_erp_urls(["cloud=http://127.0.0.1:1"]) == {"cloud": "http://127.0.0.1:1"}


def test_unacknowledged_window_is_one_batch_per_lane_plus_one_pull(tmp_path: Path):
    """Copies beyond what the lanes can take only wait, kept alive by an in-progress ack each."""
    scenario = parse_scenario(SCENARIO)
    cfg = WorkerConfig("nats://x", scenario, {"legacy": "http://x"}, tmp_path, 0.0, 60.0, lanes=3, fetch_batch=500)
    assert cfg.max_ack_pending == 2000
    wide = WorkerConfig("nats://x", scenario, {"legacy": "http://x"}, tmp_path, 0.0, 60.0, max_ack_pending=9000)
    assert wide.max_ack_pending == 9000
    # At speed 60 the scenario's 30 s ack wait is 0.5 s of wall time: it times injected ack loss, while
    # the consumer waits at least CONSUMER_ACK_WAIT_FLOOR before redelivering a copy being worked on.
    assert cfg.ack_wait == pytest.approx(0.5) and cfg.consumer_ack_wait == CONSUMER_ACK_WAIT_FLOOR


async def test_delivers_each_event_once_with_mapping(jetstream, erp, tmp_path: Path):
    async with running_worker(jetstream, erp, tmp_path):
        await publish(jetstream.url, *(event(f"T{i}") for i in range(50)),
                      event("M1", plant="P02", item="MAT-10", qty=2500, unit="G"))
        await until(lambda: len(erp.ledger) == 51, what="51 postings")
    assert sorted(r["txn_id"] for r in erp.ledger) == sorted([f"T{i}" for i in range(50)] + ["M1"])
    mapped = next(r for r in erp.ledger if r["txn_id"] == "M1")
    assert (mapped["item"], mapped["qty"], mapped["unit"]) == ("RM-10", 2.5, "KG")
    rows = deliveries(tmp_path)
    assert len(rows) == 51 and {r[1] for r in rows} == {"delivered"}
    assert all(r[4] == "legacy" and r[6] >= r[5] for r in rows)


async def test_retries_through_outage_and_breaker_opens(jetstream, erp, tmp_path: Path):
    erp.answers.extend([503] * 4)
    async with running_worker(jetstream, erp, tmp_path) as worker:
        await publish(jetstream.url, event("OUT1"), event("OUT2"))
        await until(lambda: len(deliveries(tmp_path)) == 2, what="postings after the outage")
        breaker = worker.deliveries["legacy"].breaker
        assert "open" in [state for _, state in breaker.transitions]
        assert breaker.state == "closed"
    assert erp.count("OUT1") == 1 and erp.count("OUT2") == 1
    assert worker.stats.failed_attempts == 4
    # Every transition is recorded durably, in order, for the run folder and a calibration.
    recorded = read_rows(tmp_path / "state" / "deliveries.sqlite", "SELECT * FROM breaker ORDER BY rowid")
    assert [(r["t"], r["state"]) for r in recorded] == breaker.transitions
    assert {(r["target"], r["worker"]) for r in recorded} == {("erp-legacy", worker.cfg.consumer_name)}
    assert max(r[3] for r in deliveries(tmp_path)) > 1


async def test_429_honours_retry_after_without_tripping_breaker(jetstream, erp, tmp_path: Path):
    erp.answers.extend([429] * 5)
    async with running_worker(jetstream, erp, tmp_path) as worker:
        await publish(jetstream.url, event("BUSY"))
        await until(lambda: erp.count("BUSY") == 1, what="posting after 429s")
        assert worker.deliveries["legacy"].breaker.transitions == []


async def test_dead_letters_with_reason(jetstream, erp, tmp_path: Path):
    erp.reject.add("REJECT")  # the ERP refuses this posting (and any batch holding it) with 422
    async with running_worker(jetstream, erp, tmp_path) as worker:
        await publish(jetstream.url, event("BAD-ITEM", item="NOPE"), event("REJECT"), event("OK"))
        await until(lambda: worker.stats.dead_lettered == 2 and erp.count("OK") == 1, what="dead letters")
        nc = await nats.connect(jetstream.url)
        js = nc.jetstream()
        sub = await js.pull_subscribe("dlq.>", durable="t", stream=DLQ_STREAM)
        msgs = await sub.fetch(2, timeout=5)
        await nc.close()
    reasons = {json.loads(m.data)["txn_id"]: m.headers["X-Dlq-Reason"] for m in msgs}
    assert reasons == {"BAD-ITEM": "unmapped_item", "REJECT": "erp_rejected_422"}
    outcomes = {r[0]: (r[1], r[2]) for r in deliveries(tmp_path)}
    assert outcomes["BAD-ITEM"] == ("dead_lettered", "unmapped_item")
    assert erp.count("REJECT") == 0


async def test_exhausted_retries_dead_letter(jetstream, erp, tmp_path: Path):
    erp.mode = 503
    async with running_worker(jetstream, erp, tmp_path) as worker:
        await publish(jetstream.url, event("DOWN"))
        await until(lambda: worker.stats.dead_lettered == 1, deadline_s=30, what="retries exhausted")
    assert deliveries(tmp_path)[0][1:4] == ("dead_lettered", "retries_exhausted", 6)


async def test_late_copy_with_new_msg_id_and_after_restart_posts_once(jetstream, erp, tmp_path: Path):
    async with running_worker(jetstream, erp, tmp_path):
        await publish(jetstream.url, event("DUP"))
        await until(lambda: erp.count("DUP") == 1, what="first posting")
        # Beyond the jetstream's duplicate window the same txn arrives under another message id.
        await publish(jetstream.url, event("DUP"), msg_id_suffix=":late")
        await until(lambda: len(deliveries(tmp_path)) == 2, what="second copy handled")
    async with running_worker(jetstream, erp, tmp_path):  # a fresh worker process state: store reopened
        await publish(jetstream.url, event("DUP"), msg_id_suffix=":after-restart")
        await until(lambda: len(deliveries(tmp_path)) == 3, what="copy after restart")
    assert erp.count("DUP") == 1
    outcomes = [r[1] for r in deliveries(tmp_path)]
    assert outcomes == ["delivered", "duplicate_suppressed", "duplicate_suppressed"]


async def test_unanswered_request_is_checked_before_reposting(jetstream, erp, tmp_path: Path):
    erp.swallow = 1  # the first posting lands in the ledger but its answer is lost
    async with running_worker(jetstream, erp, tmp_path):
        await publish(jetstream.url, event("LOST-ANSWER"))
        await until(lambda: len(deliveries(tmp_path)) == 1, what="delivery after the lost answer")
    assert erp.count("LOST-ANSWER") == 1
    assert deliveries(tmp_path)[0][1] == "delivered"


async def test_postings_of_one_lot_keep_their_order(jetstream, erp, tmp_path: Path):
    erp.answers.extend([201, 503, 201, 503, 503])  # failures mid-stream must not reorder a lot
    lots = {f"LOT{j}": [event(f"L{j}-{i}", lot=f"LOT{j}", flow="operation_confirmation") for i in range(15)]
            for j in range(4)}
    async with running_worker(jetstream, erp, tmp_path):
        await publish(jetstream.url, *(e for i in range(15) for evs in lots.values() for e in [evs[i]]))
        await until(lambda: len(erp.ledger) == 60, what="60 postings")
    for lot, evs in lots.items():
        posted = [r["txn_id"] for r in erp.ledger if r["txn_id"].startswith(lot[3:].join(["L", "-"]))]
        assert posted == [e.txn_id for e in evs], lot


async def test_keeps_consuming_after_the_broker_is_killed_and_restarted(jetstream, erp, tmp_path: Path):
    async with running_worker(jetstream, erp, tmp_path):
        await publish(jetstream.url, event("BEFORE"))
        await until(lambda: erp.count("BEFORE") == 1, what="posting before the jetstream kill")
        jetstream.kill()
        jetstream.start()  # same port and data dir: the stream and the durable consumer survive
        await publish(jetstream.url, event("AFTER"))
        await until(lambda: erp.count("AFTER") == 1, deadline_s=30, what="posting after the jetstream restart")
    assert len(erp.ledger) == 2


async def test_erp_client_reads_chunked_answers_and_reconnects():
    """The worker's HTTP/1.1 client against a server answering chunked, then closing the connection."""
    served = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        served.append(1)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                     b"9\r\n{\"rows\": \r\nf\r\n[{\"txn_id\": 1}]\r\n1\r\n}\r\n0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = ErpClient("legacy", f"http://127.0.0.1:{port}")
    try:
        assert await client.has_posting("1") is False  # rows hold txn 1 as a number, not "1"
        assert await client.has_posting("1") is False  # a second request on a fresh connection
        assert len(served) == 2
    finally:
        await client.close()
        server.close()
    answer = await ErpClient("legacy", f"http://127.0.0.1:{port}").post({"txn_id": "X"})
    assert (answer.ok, answer.landed) == (False, False)  # nothing listens any more: certainly not sent


async def test_withheld_acks_are_redelivered_by_jetstream_and_suppressed(jetstream, erp, tmp_path: Path):
    def suppressed() -> list[tuple]:
        return [r for r in deliveries(tmp_path) if r[1] == "duplicate_suppressed"]

    write_ack_loss(tmp_path, 1.0)  # every ack lost, as in a broker_redelivery fault window
    async with running_worker(jetstream, erp, tmp_path, ack_wait=1.0) as worker:
        await publish(jetstream.url, event("RD1"), event("RD2"))
        await until(lambda: len(suppressed()) >= 2, what="redelivered copies")
        write_ack_loss(tmp_path, 0.0)  # the window ends: the next copies are acknowledged for good
        settled = len(deliveries(tmp_path))
        await until(lambda: len(deliveries(tmp_path)) > settled, what="a last suppressed copy")
        assert worker.stats.acks_withheld >= 4
    assert erp.count("RD1") == 1 and erp.count("RD2") == 1  # posted once however often delivered
    assert {r[2] for r in suppressed()} == {"broker_redelivery"}


async def test_bodies_that_are_not_one_event_are_dead_lettered_and_the_rest_delivered(jetstream, erp, tmp_path: Path):
    good, other = event("GOOD-1"), event("GOOD-2")
    nc = await nats.connect(jetstream.url)
    js = nc.jetstream()
    await ensure_streams(js)
    bodies = [(good.txn_id, good.model_dump_json().encode()), ("JUNK", b"not json"),
              ("TWO", good.model_dump_json().encode() + b"," + other.model_dump_json().encode()),
              (other.txn_id, other.model_dump_json().encode())]
    for msg_id, body in bodies:
        await js.publish("events.P01.goods_receipt", body, headers=event_headers(msg_id, msg_id))
    await nc.close()
    async with running_worker(jetstream, erp, tmp_path) as worker:
        await until(lambda: worker.stats.dead_lettered == 2 and len(erp.ledger) == 2, what="the batch handled")
    assert sorted(r["txn_id"] for r in erp.ledger) == ["GOOD-1", "GOOD-2"]  # each once, none shifted
    dead = {r[0]: r[2] for r in deliveries(tmp_path) if r[1] == "dead_lettered"}
    assert dead == {"JUNK": "invalid_event", "TWO": "invalid_event"}
