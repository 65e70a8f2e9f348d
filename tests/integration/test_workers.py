"""Workers against a real nats-server and a real (tiny) HTTP ERP: exactly-once posting, retries,
circuit breaker, dead letters, per-lot ordering and the durable processed-key store."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections import deque
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import nats
import pytest

from integration.broker import DLQ_STREAM, EmbeddedNats, ensure_streams, event_headers
from integration.canonical import CanonicalEvent
from integration.worker_faults import write_ack_loss
from integration.workers import ErpClient, Worker, WorkerConfig, parse_erp_urls
from kernel.routing import Routing
from scenarios.loader import parse_scenario

SPEED = 60.0
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class ErpStub:
    """Serves ``POST /postings``, ``POST /postings/batch``, ``POST /ledger/lookup`` and
    ``GET /ledger?txn_id=`` on 127.0.0.1, applying a batch all or nothing like the ERP twin.

    ``answers`` is a queue of status codes used (one per posting request) before falling back to
    ``mode`` (201 by default); a request holding a txn id in ``reject`` is answered 422 and posts
    nothing; ``swallow`` requests are applied to the ledger but never answered (a lost response).
    """

    def __init__(self) -> None:
        self.ledger: list[dict] = []
        self.batches: list[int] = []  # size of every posting request the stub applied
        self.answers: deque[int] = deque()
        self.mode = 201
        self.retry_after = "0.05"
        self.requests = 0
        self.lookups = 0
        self.swallow = 0
        self.reject: set[str] = set()
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the worker's client expects

            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: object, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path == "/ledger/lookup":
                    with stub.lock:
                        stub.lookups += 1
                        held = {r["txn_id"] for r in stub.ledger}
                    self._send(200, {"found": [t for t in body["txn_ids"] if t in held]})
                    return
                postings = body if self.path == "/postings/batch" else [body]
                with stub.lock:
                    stub.requests += 1
                    code = stub.answers.popleft() if stub.answers else stub.mode
                    if code == 201 and stub.reject & {p["txn_id"] for p in postings}:
                        code = 422
                    swallow = stub.swallow > 0 and code == 201
                    if swallow:
                        stub.swallow -= 1
                    if code == 201:
                        stub.ledger.extend(postings)
                        stub.batches.append(len(postings))
                if swallow:  # the postings landed but the answer is lost: drop the connection
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                headers = {"Retry-After": stub.retry_after} if code == 429 else None
                self._send(code, {"status": code}, headers)

            def do_GET(self) -> None:  # noqa: N802
                query = parse_qs(urlparse(self.path).query)
                txn = query.get("txn_id", [None])[0]
                with stub.lock:
                    rows = [r for r in stub.ledger if txn is None or r["txn_id"] == txn]
                self._send(200, rows)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ErpStub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, txn_id: str) -> int:
        with self.lock:
            return sum(1 for r in self.ledger if r["txn_id"] == txn_id)


SCENARIO = {
    "name": "workers-test",
    "landscape": {
        "items": {"FG-100": {"unit": "EA"}, "RM-10": {"unit": "KG"}},
        "integration": {"retry": {"initial": "1s", "max_attempts": 6},
                        "circuit_breaker": {"failure_threshold": 3, "cooldown": "5s"}},
        "plants": [
            {"id": "P01", "products": ["FG-100"]},
            {"id": "P02", "products": ["MAT-10"],
             "mapping": {"items": {"MAT-10": "RM-10"}, "units": {"G": {"to": "KG", "factor": 0.001}}}},
        ],
    },
}


def event(txn: str, plant: str = "P01", item: str = "FG-100", qty: float = 1.0, unit: str = "EA",
          lot: str = "", flow: str = "goods_receipt") -> CanonicalEvent:
    return CanonicalEvent(txn_id=txn, correlation_id=lot or txn, flow=flow, plant=plant, item=item, lot=lot,
                          qty=qty, unit=unit, t_created=1.0)


async def until(predicate, timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``predicate`` until true; fail after ``timeout`` wall seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def broker(tmp_path: Path):
    with EmbeddedNats(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def erp():
    with ErpStub() as stub:
        yield stub


@asynccontextmanager
async def running_worker(broker: EmbeddedNats, erp: ErpStub, run_dir: Path, scenario: dict = SCENARIO,
                         **config: object):
    """A worker consuming in this event loop until the block ends; ``config`` overrides WorkerConfig fields."""
    cfg = WorkerConfig(broker.url, parse_scenario(scenario), {"legacy": erp.url}, run_dir,
                       epoch=time.time(), speed=SPEED, **config)
    ready, stop = asyncio.Event(), asyncio.Event()
    worker = Worker(cfg, on_ready=ready.set)
    task = asyncio.create_task(worker.run(stop))
    await asyncio.wait_for(ready.wait(), 15)
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def publish(url: str, *events: CanonicalEvent, msg_id_suffix: str = "") -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_streams(js)
    for e in events:
        await js.publish(f"events.{e.plant}.{e.flow}", e.model_dump_json().encode(),
                         headers=event_headers(e.txn_id + msg_id_suffix, e.correlation_id))
    await nc.close()


def deliveries(run_dir: Path) -> list[tuple]:
    with sqlite3.connect(run_dir / "state" / "deliveries.sqlite") as db:
        return db.execute("SELECT txn_id, outcome, reason, attempts, target, t_broker, t_delivered "
                          "FROM deliveries ORDER BY rowid").fetchall()


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


async def test_delivers_each_event_once_with_mapping(broker, erp, tmp_path: Path):
    async with running_worker(broker, erp, tmp_path):
        await publish(broker.url, *(event(f"T{i}") for i in range(50)),
                      event("M1", plant="P02", item="MAT-10", qty=2500, unit="G"))
        await until(lambda: len(erp.ledger) == 51, what="51 postings")
    assert sorted(r["txn_id"] for r in erp.ledger) == sorted([f"T{i}" for i in range(50)] + ["M1"])
    mapped = next(r for r in erp.ledger if r["txn_id"] == "M1")
    assert (mapped["item"], mapped["qty"], mapped["unit"]) == ("RM-10", 2.5, "KG")
    rows = deliveries(tmp_path)
    assert len(rows) == 51 and {r[1] for r in rows} == {"delivered"}
    assert all(r[4] == "legacy" and r[6] >= r[5] for r in rows)


async def test_retries_through_outage_and_breaker_opens(broker, erp, tmp_path: Path):
    erp.answers.extend([503] * 4)
    async with running_worker(broker, erp, tmp_path) as worker:
        await publish(broker.url, event("OUT1"), event("OUT2"))
        await until(lambda: len(deliveries(tmp_path)) == 2, what="postings after the outage")
        breaker = worker.deliveries["legacy"].breaker
        assert "open" in [state for _, state in breaker.transitions]
        assert breaker.state == "closed"
    assert erp.count("OUT1") == 1 and erp.count("OUT2") == 1
    assert worker.stats.failed_attempts == 4
    assert max(r[3] for r in deliveries(tmp_path)) > 1


async def test_429_honours_retry_after_without_tripping_breaker(broker, erp, tmp_path: Path):
    erp.answers.extend([429] * 5)
    async with running_worker(broker, erp, tmp_path) as worker:
        await publish(broker.url, event("BUSY"))
        await until(lambda: erp.count("BUSY") == 1, what="posting after 429s")
        assert worker.deliveries["legacy"].breaker.transitions == []


async def test_dead_letters_with_reason(broker, erp, tmp_path: Path):
    erp.reject.add("REJECT")  # the ERP refuses this posting (and any batch holding it) with 422
    async with running_worker(broker, erp, tmp_path) as worker:
        await publish(broker.url, event("BAD-ITEM", item="NOPE"), event("REJECT"), event("OK"))
        await until(lambda: worker.stats.dead_lettered == 2 and erp.count("OK") == 1, what="dead letters")
        nc = await nats.connect(broker.url)
        js = nc.jetstream()
        sub = await js.pull_subscribe("dlq.>", durable="t", stream=DLQ_STREAM)
        msgs = await sub.fetch(2, timeout=5)
        await nc.close()
    reasons = {json.loads(m.data)["txn_id"]: m.headers["X-Dlq-Reason"] for m in msgs}
    assert reasons == {"BAD-ITEM": "unmapped_item", "REJECT": "erp_rejected_422"}
    outcomes = {r[0]: (r[1], r[2]) for r in deliveries(tmp_path)}
    assert outcomes["BAD-ITEM"] == ("dead_lettered", "unmapped_item")
    assert erp.count("REJECT") == 0


async def test_exhausted_retries_dead_letter(broker, erp, tmp_path: Path):
    erp.mode = 503
    async with running_worker(broker, erp, tmp_path) as worker:
        await publish(broker.url, event("DOWN"))
        await until(lambda: worker.stats.dead_lettered == 1, timeout=30, what="retries exhausted")
    assert deliveries(tmp_path)[0][1:4] == ("dead_lettered", "retries_exhausted", 6)


async def test_late_copy_with_new_msg_id_and_after_restart_posts_once(broker, erp, tmp_path: Path):
    async with running_worker(broker, erp, tmp_path):
        await publish(broker.url, event("DUP"))
        await until(lambda: erp.count("DUP") == 1, what="first posting")
        # Beyond the broker's duplicate window the same txn arrives under another message id.
        await publish(broker.url, event("DUP"), msg_id_suffix=":late")
        await until(lambda: len(deliveries(tmp_path)) == 2, what="second copy handled")
    async with running_worker(broker, erp, tmp_path):  # a fresh worker process state: store reopened
        await publish(broker.url, event("DUP"), msg_id_suffix=":after-restart")
        await until(lambda: len(deliveries(tmp_path)) == 3, what="copy after restart")
    assert erp.count("DUP") == 1
    outcomes = [r[1] for r in deliveries(tmp_path)]
    assert outcomes == ["delivered", "duplicate_suppressed", "duplicate_suppressed"]


async def test_unanswered_request_is_checked_before_reposting(broker, erp, tmp_path: Path):
    erp.swallow = 1  # the first posting lands in the ledger but its answer is lost
    async with running_worker(broker, erp, tmp_path):
        await publish(broker.url, event("LOST-ANSWER"))
        await until(lambda: len(deliveries(tmp_path)) == 1, what="delivery after the lost answer")
    assert erp.count("LOST-ANSWER") == 1
    assert deliveries(tmp_path)[0][1] == "delivered"


async def test_postings_of_one_lot_keep_their_order(broker, erp, tmp_path: Path):
    erp.answers.extend([201, 503, 201, 503, 503])  # failures mid-stream must not reorder a lot
    lots = {f"LOT{j}": [event(f"L{j}-{i}", lot=f"LOT{j}", flow="operation_confirmation") for i in range(15)]
            for j in range(4)}
    async with running_worker(broker, erp, tmp_path):
        await publish(broker.url, *(e for i in range(15) for evs in lots.values() for e in [evs[i]]))
        await until(lambda: len(erp.ledger) == 60, what="60 postings")
    for lot, evs in lots.items():
        posted = [r["txn_id"] for r in erp.ledger if r["txn_id"].startswith(lot[3:].join(["L", "-"]))]
        assert posted == [e.txn_id for e in evs], lot


async def test_keeps_consuming_after_the_broker_is_killed_and_restarted(broker, erp, tmp_path: Path):
    async with running_worker(broker, erp, tmp_path):
        await publish(broker.url, event("BEFORE"))
        await until(lambda: erp.count("BEFORE") == 1, what="posting before the broker kill")
        broker.kill()
        broker.start()  # same port and data dir: the stream and the durable consumer survive
        await publish(broker.url, event("AFTER"))
        await until(lambda: erp.count("AFTER") == 1, timeout=30, what="posting after the broker restart")
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


async def test_withheld_acks_are_redelivered_by_jetstream_and_suppressed(broker, erp, tmp_path: Path):
    def suppressed() -> list[tuple]:
        return [r for r in deliveries(tmp_path) if r[1] == "duplicate_suppressed"]

    write_ack_loss(tmp_path, 1.0)  # every ack lost, as in a broker_redelivery fault window
    async with running_worker(broker, erp, tmp_path, ack_wait=1.0) as worker:
        await publish(broker.url, event("RD1"), event("RD2"))
        await until(lambda: len(suppressed()) >= 2, what="redelivered copies")
        write_ack_loss(tmp_path, 0.0)  # the window ends: the next copies are acknowledged for good
        settled = len(deliveries(tmp_path))
        await until(lambda: len(deliveries(tmp_path)) > settled, what="a last suppressed copy")
        assert worker.stats.acks_withheld >= 4
    assert erp.count("RD1") == 1 and erp.count("RD2") == 1  # posted once however often delivered
    assert {r[2] for r in suppressed()} == {"broker_redelivery"}


async def test_bodies_that_are_not_one_event_are_dead_lettered_and_the_rest_delivered(broker, erp, tmp_path: Path):
    good, other = event("GOOD-1"), event("GOOD-2")
    nc = await nats.connect(broker.url)
    js = nc.jetstream()
    await ensure_streams(js)
    bodies = [(good.txn_id, good.model_dump_json().encode()), ("JUNK", b"not json"),
              ("TWO", good.model_dump_json().encode() + b"," + other.model_dump_json().encode()),
              (other.txn_id, other.model_dump_json().encode())]
    for msg_id, body in bodies:
        await js.publish("events.P01.goods_receipt", body, headers=event_headers(msg_id, msg_id))
    await nc.close()
    async with running_worker(broker, erp, tmp_path) as worker:
        await until(lambda: worker.stats.dead_lettered == 2 and len(erp.ledger) == 2, what="the batch handled")
    assert sorted(r["txn_id"] for r in erp.ledger) == ["GOOD-1", "GOOD-2"]  # each once, none shifted
    dead = {r[0]: r[2] for r in deliveries(tmp_path) if r[1] == "dead_lettered"}
    assert dead == {"JUNK": "invalid_event", "TWO": "invalid_event"}
