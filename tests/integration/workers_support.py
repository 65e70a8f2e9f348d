"""What the worker tests share: a stand-in ERP, a small scenario, events, a running worker, the delivery rows.

Plain helpers (the fixtures built on them are in ``conftest.py``)."""

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

from integration.broker import EmbeddedNats, ensure_streams, event_headers
from integration.canonical import CanonicalEvent
from integration.workers import Worker, WorkerConfig
from scenarios.loader import parse_scenario

SPEED = 60.0


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
    """A canonical event of ``plant`` (a goods receipt of one FG-100 unless told otherwise)."""
    return CanonicalEvent(txn_id=txn, correlation_id=lot or txn, flow=flow, plant=plant, item=item, lot=lot,
                          qty=qty, unit=unit, t_created=1.0)


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
    """Publish ``events`` to the EVENTS stream as the gateway does (message id: txn id + ``msg_id_suffix``)."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_streams(js)
    for e in events:
        await js.publish(f"events.{e.plant}.{e.flow}", e.model_dump_json().encode(),
                         headers=event_headers(e.txn_id + msg_id_suffix, e.correlation_id))
    await nc.close()


def deliveries(run_dir: Path) -> list[tuple]:
    """(txn_id, outcome, reason, attempts, target, t_broker, t_delivered) of every delivery row, in order."""
    with sqlite3.connect(run_dir / "state" / "deliveries.sqlite") as db:
        return db.execute("SELECT txn_id, outcome, reason, attempts, target, t_broker, t_delivered "
                          "FROM deliveries ORDER BY rowid").fetchall()
