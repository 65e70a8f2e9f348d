"""Integration workers: JetStream ``EVENTS`` → mapping → routing → ERP postings, exactly once.

One pull consumer feeds *lanes*: every message goes to the lane of its business key (the lot, else
the correlation id, else the transaction id), and a lane handles its messages one after another,
so postings of one lot reach the ERP in order while different lots proceed in parallel. Copies of
one transaction share a lane, so a copy can never race its twin past the processed-key check.

Per message the sans-IO :class:`~integration.delivery.Delivery` of the target ERP decides: post,
suppress (already processed), retry later (backoff, breaker cooldown, 429 Retry-After) or
dead-letter. The message is acknowledged to JetStream only after the ERP answered 201 or after the
dead letter was stored, so a worker killed mid-way loses nothing: JetStream redelivers and the
durable processed-key store suppresses what already landed.

Delivery times are scenario seconds (``ScaledClock``); the retry policy and breaker cooldown from
the scenario are scenario durations too, so they shrink with ``--speed`` like everything else.

Limits, on purpose: a message waiting for its retry holds its lane (other keys hashed to that lane
wait too; during an ERP outage every lane waits anyway). Order per key holds while the worker
lives; copies JetStream redelivers after a crash may arrive after newer ones. When an answer is
lost (timeout, dropped connection) the worker asks the ERP's ledger before posting again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
import sys
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from integration.broker import (
    EVENTS_STREAM,
    EVENTS_SUBJECTS,
    HEADER_CORRELATION,
    HEADER_MSG_ID,
    broker_time,
    dead_letter,
    ensure_streams,
)
from integration.canonical import CanonicalEvent
from integration.delivery import (
    HALF_OPEN,
    CircuitBreaker,
    DeadLetter,
    Delivery,
    Post,
    RetryAt,
    RetryPolicy,
    Suppress,
)
from integration.mapping import Mapped, PlantMapping
from integration.processed_keys import SqliteProcessedKeys
from integration.trace import (
    DEAD_LETTERED,
    DELIVERED,
    DOWNTIME,
    DUPLICATE_SUPPRESSED,
    ERP_POSTING_FLOWS,
    REASON_REDELIVERY,
)
from live.clock import ScaledClock
from scenarios.spec import Scenario

CONSUMER = "erp-workers"
REASON_INVALID_EVENT = "invalid_event"
REASON_UNKNOWN_PLANT = "unknown_plant"
REASON_ERP_REJECTED = "erp_rejected"


# ------------------------------------------------------------------------------------------ routing
@dataclass(frozen=True)
class ErpRouter:
    """Which ERP (``legacy``/``cloud``) serves a plant at a scenario time: the plant's own ``erp``
    until a rollout wave naming it starts, then that wave's ERP."""

    default: dict[str, str]
    waves: tuple[tuple[float, frozenset[str], str], ...] = ()

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> ErpRouter:
        default = {p.id: p.erp for p in scenario.landscape.all_plants}
        waves = sorted((w.at, frozenset(w.plants), w.erp) for w in scenario.rollout.waves)
        return cls(default, tuple(waves))

    def target(self, plant: str, t: float) -> str | None:
        """The ERP kind for ``plant`` at scenario time ``t``; None for a plant the scenario lacks."""
        kind = self.default.get(plant)
        for at, plants, erp in self.waves:
            if at <= t and plant in plants:
                kind = erp
        return kind

    def kinds(self) -> set[str]:
        """Every ERP kind some plant routes to at some time."""
        return set(self.default.values()) | {erp for _, _, erp in self.waves}


# -------------------------------------------------------------------------------------- ERP client
@dataclass(frozen=True)
class ErpAnswer:
    """How one posting attempt ended. ``landed`` is None when the request may or may not have been
    applied (timeout, connection dropped after sending)."""

    ok: bool
    landed: bool | None = False
    retry_after: float | None = None  # wall seconds, from a 429
    permanent: str | None = None
    detail: str = ""


class _NotSent(Exception):
    """The request certainly did not reach the server (connection refused, stale connection)."""


@dataclass
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body or b"null")


class _Connection:
    """One keep-alive HTTP/1.1 connection. The ERP API is JSON in, JSON out with Content-Length
    (or chunked) answers, which is all this speaks. Measured on the 2-core machine: 0.13 ms of
    client CPU a request against 2.4 ms with httpx, whose pool and anyio layers dominated the
    worker's profile."""

    IDLE_LIMIT = 4.0  # wall seconds; below uvicorn's 5 s keep-alive, so the server never closes first

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.last_used = 0.0

    async def request(self, method: str, path: str, body: bytes | None) -> _Response:
        loop = asyncio.get_running_loop()
        if self.writer is not None and (self.reader.at_eof() or loop.time() - self.last_used > self.IDLE_LIMIT):
            self.close()
        if self.writer is None:
            try:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            except OSError as exc:
                raise _NotSent(type(exc).__name__) from exc
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        try:
            self.writer.write(head.encode() + b"\r\n" + (body or b""))
            status_line, *lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}
            if headers.get("transfer-encoding", "").lower() == "chunked":
                data = await self._chunked()
            else:
                data = await self.reader.readexactly(int(headers.get("content-length", "0")))
        except BaseException:
            self.close()
            raise
        self.last_used = loop.time()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return _Response(int(status_line.split()[1]), headers, data)

    async def _chunked(self) -> bytes:
        data = b""
        while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
            data += await self.reader.readexactly(size + 2)
            data = data[:-2]
        await self.reader.readuntil(b"\r\n")
        return data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class ErpClient:
    """The ERP twin's HTTP API as the worker needs it, over a small pool of keep-alive connections."""

    def __init__(self, kind: str, base_url: str, timeout: float = 10.0, connections: int = 16):
        parsed = urlsplit(base_url)
        if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
            raise ValueError(f"--erp {kind}={base_url}: write http://HOST:PORT (plain HTTP on loopback)")
        self.kind, self.timeout, self.max_idle = kind, timeout, connections
        self._address = (parsed.hostname, parsed.port)
        self._idle: list[_Connection] = []

    async def _request(self, method: str, path: str, body: bytes | None = None) -> _Response:
        conn = self._idle.pop() if self._idle else _Connection(*self._address)
        response = await asyncio.wait_for(conn.request(method, path, body), self.timeout)
        if conn.writer is not None and len(self._idle) < self.max_idle:
            self._idle.append(conn)
        return response

    async def post(self, body: dict) -> ErpAnswer:
        """POST /postings and classify the answer for the delivery state machine."""
        try:
            response = await self._request("POST", "/postings", json.dumps(body).encode())
        except _NotSent as exc:
            return ErpAnswer(False, landed=False, detail=f"{self.kind}: {exc}")
        except (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            # Sent, but no usable answer came: the posting may exist.
            return ErpAnswer(False, landed=None, detail=f"{self.kind}: {type(exc).__name__}")
        code = response.status
        if code in (200, 201):
            return ErpAnswer(True, landed=True)
        if code == 429:
            return ErpAnswer(False, retry_after=_retry_after(response.headers), detail=f"{self.kind}: 429")
        if code >= 500 or code == 408:
            return ErpAnswer(False, detail=f"{self.kind}: {code}")
        return ErpAnswer(False, permanent=f"{REASON_ERP_REJECTED}_{code}",
                         detail=f"{self.kind}: {code} {response.body[:200].decode(errors='replace')}")

    async def has_posting(self, txn_id: str) -> bool | None:
        """Does the ledger hold ``txn_id``? None when the ERP cannot tell right now.

        Pages through ``GET /ledger`` (rare: only after a request whose answer was lost)."""
        after = 0
        while True:
            query = urlencode({"txn_id": txn_id, "after": after, "limit": 20_000})
            try:
                response = await self._request("GET", f"/ledger?{query}")
                page = response.json()
            except (_NotSent, OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
                return None
            if response.status != 200:
                return None
            rows = page.get("rows", []) if isinstance(page, dict) else page
            if any(row.get("txn_id") == txn_id for row in rows):
                return True
            if not rows or not isinstance(page, dict) or page.get("next_after", after) == after:
                return False
            after = page["next_after"]

    async def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def _retry_after(headers: dict[str, str]) -> float:
    try:
        return max(0.0, float(headers.get("retry-after", "1")))
    except ValueError:
        return 1.0


# ---------------------------------------------------------------------------------- delivery log
DELIVERY_COLUMNS = (
    "txn_id", "t_broker", "t_delivered", "attempts", "outcome", "reason", "target",
    # Not in the minimal contract; they let collection build trace rows without the edge outbox.
    "correlation_id", "flow", "plant", "line", "item", "lot", "qty", "unit", "schema_version",
    "t_created", "t_acked", "detail",
)


class DeliveryLog:
    """``deliveries.sqlite``: one row per message copy the workers finished with."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS deliveries (txn_id TEXT, t_broker REAL, t_delivered REAL, "
            "attempts INTEGER, outcome TEXT, reason TEXT, target TEXT, correlation_id TEXT, flow TEXT, "
            "plant TEXT, line TEXT, item TEXT, lot TEXT, qty REAL, unit TEXT, schema_version TEXT, "
            "t_created REAL, t_acked REAL, detail TEXT)"
        )
        self._sql = (f"INSERT INTO deliveries ({', '.join(DELIVERY_COLUMNS)}) "
                     f"VALUES ({', '.join('?' * len(DELIVERY_COLUMNS))})")

    def record(self, **row: object) -> None:
        """Append one row; missing columns are NULL. Committed before returning."""
        unknown = set(row) - set(DELIVERY_COLUMNS)
        if unknown:
            raise ValueError(f"unknown delivery columns: {sorted(unknown)}")
        self._db.execute(self._sql, tuple(row.get(c) for c in DELIVERY_COLUMNS))

    def count(self) -> int:
        return self._db.execute("SELECT count(*) FROM deliveries").fetchone()[0]

    def close(self) -> None:
        self._db.close()


# ------------------------------------------------------------------------------------------ worker
@dataclass
class WorkerConfig:
    """Everything one worker process needs; ``erp_urls`` maps ERP kind to base URL."""

    nats_url: str
    scenario: Scenario
    erp_urls: dict[str, str]
    run_dir: Path
    epoch: float
    speed: float
    lanes: int = 16
    lane_depth: int = 32
    fetch_batch: int = 256
    ack_wait: float = 5.0  # wall seconds; held messages are kept alive with in-progress acks
    seed: int = 0
    consumer: str = CONSUMER

    def __post_init__(self) -> None:
        missing = ErpRouter.from_scenario(self.scenario).kinds() - set(self.erp_urls)
        if missing:
            raise ValueError(f"--erp: the scenario routes plants to {', '.join(sorted(missing))} but no URL "
                             f"was given; add e.g. --erp {sorted(missing)[0]}=http://127.0.0.1:PORT")


@dataclass
class _Copy:
    """One message copy in a lane."""

    msg: object
    event: CanonicalEvent | None
    error: str = ""
    t_broker: float = float("nan")


@dataclass
class WorkerStats:
    delivered: int = 0
    suppressed: int = 0
    dead_lettered: int = 0
    failed_attempts: int = 0
    by_target: dict[str, int] = field(default_factory=dict)


class Worker:
    """The live integration worker. ``await run(stop)`` until ``stop`` is set."""

    def __init__(self, config: WorkerConfig, on_ready: Callable[[], None] | None = None):
        self.cfg = config
        self.clock = ScaledClock(config.epoch, config.speed)
        self.router = ErpRouter.from_scenario(config.scenario)
        master = config.scenario.landscape.items
        plants = config.scenario.landscape.all_plants
        self.mappings = {p.id: PlantMapping.from_spec(p, master) for p in plants}
        state = Path(config.run_dir) / "state"
        self.keys = SqliteProcessedKeys(state / "worker-keys.sqlite")
        self.log = DeliveryLog(state / "deliveries.sqlite")
        integ = config.scenario.landscape.integration
        policy = RetryPolicy(integ.retry.initial, integ.retry.multiplier, integ.retry.max_delay,
                             integ.retry.max_attempts, integ.retry.jitter)
        self.deliveries = {
            kind: Delivery(policy, CircuitBreaker(integ.circuit_breaker.failure_threshold,
                                                  integ.circuit_breaker.cooldown),
                           self.keys, idempotency=integ.idempotency)
            for kind in config.erp_urls
        }
        self.erps = {kind: ErpClient(kind, url, connections=config.lanes)
                     for kind, url in config.erp_urls.items()}
        self.rng = random.Random(config.seed)
        self.stats = WorkerStats()
        self._held: dict[int, object] = {}
        self._probing: dict[str, bool] = {}
        self._on_ready = on_ready
        self.js = None

    # ---------------------------------------------------------------------------------- main loop
    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; unfinished copies stay unacknowledged for the next run."""
        nc = await nats.connect(self.cfg.nats_url, name="synctwin-worker", max_reconnect_attempts=-1,
                                reconnect_time_wait=0.25, connect_timeout=5, error_cb=_note_error,
                                disconnected_cb=_note("broker connection lost; reconnecting"),
                                reconnected_cb=_note("broker connection back"))
        try:
            self.js = nc.jetstream()
            sub = await self._subscribe()
            if self._on_ready is not None:
                self._on_ready()
            queues = [asyncio.Queue(self.cfg.lane_depth) for _ in range(self.cfg.lanes)]
            tasks = [asyncio.create_task(self._lane(q)) for q in queues]
            tasks.append(asyncio.create_task(self._heartbeat()))
            fetcher = asyncio.create_task(self._fetch(sub, queues, stop))
            await stop.wait()
            fetcher.cancel()
            await _quietly(fetcher)
            await self._settle(queues, deadline=2.0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            # close, not drain: unfinished copies stay unacknowledged and JetStream redelivers them.
            await _quietly(nc.close(), timeout=2.0)
            for erp in self.erps.values():
                await erp.close()
            self.keys.close()
            self.log.close()

    async def _subscribe(self):
        config = ConsumerConfig(
            durable_name=self.cfg.consumer, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.cfg.ack_wait, max_deliver=-1,
            max_ack_pending=self.cfg.lanes * self.cfg.lane_depth * 4,
        )
        await ensure_streams(self.js)  # idempotent; the worker may start before the gateway
        return await self.js.pull_subscribe(EVENTS_SUBJECTS, durable=self.cfg.consumer, stream=EVENTS_STREAM,
                                            config=config)

    async def _fetch(self, sub, queues: list[asyncio.Queue], stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(self.cfg.fetch_batch, timeout=0.25)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            except Exception as exc:  # noqa: BLE001 - broker restarting: keep fetching, never die silently
                print(f"worker: fetch failed ({type(exc).__name__}: {exc}); retrying", file=sys.stderr, flush=True)
                await asyncio.sleep(0.25)
                continue
            for msg in msgs:
                copy = self._parse(msg)
                self._held[id(msg)] = msg
                key = copy.event.lot or copy.event.correlation_id or copy.event.txn_id if copy.event else ""
                await queues[zlib.crc32(key.encode()) % len(queues)].put(copy)

    def _parse(self, msg) -> _Copy:
        t_broker = broker_time(msg, self.clock)
        try:
            return _Copy(msg, CanonicalEvent.model_validate_json(msg.data), t_broker=t_broker)
        except ValidationError as exc:
            return _Copy(msg, None, error=str(exc).replace("\n", " ")[:300], t_broker=t_broker)

    async def _lane(self, queue: asyncio.Queue) -> None:
        while True:
            copy = await queue.get()
            try:
                await self._handle(copy)
            finally:
                self._held.pop(id(copy.msg), None)
                queue.task_done()

    async def _settle(self, queues: list[asyncio.Queue], deadline: float) -> None:
        """Give copies already being posted a moment to finish, so a clean stop leaves few to redo."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(q.join() for q in queues)), deadline)

    async def _heartbeat(self) -> None:
        """Tell JetStream that fetched-but-unfinished copies are still being worked on."""
        while True:
            await asyncio.sleep(self.cfg.ack_wait / 3)
            for msg in list(self._held.values()):
                await _quietly(msg.in_progress(), timeout=1.0)

    # ------------------------------------------------------------------------------ one message
    async def _handle(self, copy: _Copy) -> None:
        event = copy.event
        if event is None:
            await self._dead_letter(copy, None, "", 0, REASON_INVALID_EVENT, copy.error)
            return
        if event.flow not in ERP_POSTING_FLOWS:
            # Downtime, telemetry ...: not ERP postings. Their consumers (maintenance, analytics)
            # read the stream themselves; the workers only record the hand-off.
            target = "maintenance" if event.flow == DOWNTIME else (event.target.lower() or "analytics")
            self._finish(copy, event, target if target != "erp" else "analytics", 0, DELIVERED, "",
                         t_delivered=self.clock.now())
            await _quietly(copy.msg.ack(), timeout=5.0)
            return
        mapping = self.mappings.get(event.plant)
        kind = self.router.target(event.plant, event.t_created)
        if mapping is None or kind is None:
            await self._dead_letter(copy, event, "", 0, REASON_UNKNOWN_PLANT,
                                    f"plant {event.plant!r} is not in the scenario")
            return
        mapped = mapping.map_one(event.item, event.qty, event.unit)
        if not isinstance(mapped, Mapped):
            await self._dead_letter(copy, event, kind, 0, mapped.reason, mapped.detail)
            return
        await self._deliver(copy, event, mapped, kind)

    async def _deliver(self, copy: _Copy, event: CanonicalEvent, mapped: Mapped, kind: str) -> None:
        delivery, erp, key = self.deliveries[kind], self.erps[kind], event.txn_id
        body = {"txn_id": key, "flow": event.flow, "plant": event.plant, "item": mapped.item,
                "qty": mapped.qty, "unit": mapped.unit, "t_created": event.t_created}
        attempt, maybe_landed, detail = 1, self.keys.uncertain(key), ""
        while True:
            action = delivery.offer(key, attempt, self.clock.now(), self.rng.random())
            if isinstance(action, Suppress):
                self._finish(copy, event, kind, attempt - 1, DUPLICATE_SUPPRESSED, REASON_REDELIVERY,
                             mapped=mapped)
                await _quietly(copy.msg.ack(), timeout=5.0)
                self.stats.suppressed += 1
                return
            if isinstance(action, RetryAt):
                attempt = action.attempt
                await asyncio.sleep(max(0.0, self.clock.wall_delay(action.at - self.clock.now())))
                continue
            assert isinstance(action, Post)
            if delivery.breaker.state == HALF_OPEN and self._probing.get(kind):
                # Half-open admits one probe per target; the other lanes wait for its verdict.
                pause = delivery.policy.initial * (0.5 + self.rng.random())
                await asyncio.sleep(self.clock.wall_delay(pause))
                continue
            self._probing[kind] = delivery.breaker.state == HALF_OPEN
            try:
                answer = await self._attempt(erp, key, body, maybe_landed)
            finally:
                self._probing[kind] = False
            if answer is None:  # an earlier request did not land after all: post now
                maybe_landed = False
                continue
            now = self.clock.now()
            if answer.ok:
                delivery.succeeded(key, action.attempt, now)
                self._finish(copy, event, kind, action.attempt, DELIVERED, "", t_delivered=now,
                             detail=answer.detail, mapped=mapped)
                await _quietly(copy.msg.ack(), timeout=5.0)
                self.stats.delivered += 1
                self.stats.by_target[kind] = self.stats.by_target.get(kind, 0) + 1
                return
            self.stats.failed_attempts += 1
            maybe_landed = maybe_landed or answer.landed is None
            detail = answer.detail
            retry_after = None if answer.retry_after is None else answer.retry_after * self.cfg.speed
            result = delivery.failed(key, action.attempt, now, self.rng.random(), retry_after=retry_after,
                                     permanent_reason=answer.permanent)
            if isinstance(result, DeadLetter):
                if not maybe_landed:
                    self.keys.abandon(key)
                await self._dead_letter(copy, event, kind, result.attempt, result.reason, detail)
                return
            assert isinstance(result, RetryAt)
            attempt = result.attempt
            await asyncio.sleep(max(0.0, self.clock.wall_delay(result.at - self.clock.now())))

    async def _attempt(self, erp: ErpClient, key: str, body: dict, maybe_landed: bool) -> ErpAnswer | None:
        """One attempt: post, or -- when an earlier request went unanswered -- first ask the ERP whether
        it landed. None means it did not, so the caller posts right away."""
        if maybe_landed:
            found = await erp.has_posting(key)
            if found:
                return ErpAnswer(True, landed=True, detail="in the ledger after an unanswered request")
            if found is None:
                return ErpAnswer(False, landed=None, detail=f"{erp.kind}: ledger not readable")
            return None
        self.keys.begin(key, self.clock.now())
        return await erp.post(body)

    async def _dead_letter(self, copy: _Copy, event: CanonicalEvent | None, kind: str, attempts: int,
                           reason: str, detail: str) -> None:
        """Store the copy on ``dlq.<plant>.<flow>`` with its reason, then acknowledge it."""
        msg = copy.msg
        headers = msg.headers or {}
        txn = event.txn_id if event else headers.get(HEADER_MSG_ID, f"seq-{msg.metadata.sequence.stream}")
        plant, flow = (event.plant, event.flow) if event else ("unknown", "invalid")
        correlation = event.correlation_id if event else headers.get(HEADER_CORRELATION, "")
        while True:  # the copy is acked only once its dead letter is durably stored
            try:
                await dead_letter(self.js, msg.data, plant, flow, txn, correlation, reason, detail)
                break
            except (nats.errors.Error, TimeoutError):
                await asyncio.sleep(0.5)
        self._finish(copy, event, kind, attempts, DEAD_LETTERED, reason, detail=detail)
        await _quietly(msg.ack(), timeout=5.0)
        self.stats.dead_lettered += 1

    def _finish(self, copy: _Copy, event: CanonicalEvent | None, kind: str, attempts: int, outcome: str,
                reason: str, t_delivered: float = float("nan"), detail: str = "",
                mapped: Mapped | None = None) -> None:
        """Record the copy's row. Item, quantity and unit are the ERP's (mapped) ones when known, so
        trace and ledger reconcile; otherwise the plant's as received."""
        fields = {} if event is None else event.model_dump(
            include={"correlation_id", "flow", "plant", "line", "item", "lot", "qty", "unit",
                     "schema_version", "t_created"})
        if mapped is not None:
            fields.update(item=mapped.item, qty=mapped.qty, unit=mapped.unit)
        txn = event.txn_id if event else (copy.msg.headers or {}).get(HEADER_MSG_ID, "")
        self.log.record(txn_id=txn, t_broker=copy.t_broker, t_delivered=t_delivered, attempts=attempts,
                        outcome=outcome, reason=reason, target=kind, t_acked=self.clock.now(),
                        detail=detail, **fields)


async def _note_error(exc: Exception) -> None:
    """One line per broker connection error instead of nats-py's default traceback."""
    print(f"worker: broker: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)


def _note(text: str) -> Callable[[], Awaitable[None]]:
    async def callback() -> None:
        print(f"worker: {text}", file=sys.stderr, flush=True)

    return callback


async def _quietly(awaitable, timeout: float | None = None) -> None:
    """Await ``awaitable`` ignoring its failure: used for acks and shutdown, where the broker may be
    gone and JetStream's redelivery is the recovery path."""
    try:
        if timeout is None:
            await awaitable
        else:
            await asyncio.wait_for(awaitable, timeout)
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - see docstring
        pass


def parse_erp_urls(values: list[str]) -> dict[str, str]:
    """``["legacy=http://..", "cloud=http://.."]`` → mapping; raises ValueError naming the bad value."""
    urls: dict[str, str] = {}
    for value in values:
        kind, sep, url = value.partition("=")
        if not sep or kind not in ("legacy", "cloud") or not url.startswith(("http://", "https://")):
            raise ValueError(f"--erp {value!r}: write KIND=URL with KIND legacy or cloud, "
                             "e.g. --erp legacy=http://127.0.0.1:8081")
        urls[kind] = url
    return urls


def run_worker(config: WorkerConfig) -> WorkerStats:
    """Entry point of ``synctwin worker``: run until SIGTERM/SIGINT, print READY once consuming."""
    import signal

    async def main() -> WorkerStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = Worker(config, on_ready=lambda: print(f"READY worker {config.nats_url}", flush=True))
        await worker.run(stop)
        return worker.stats

    stats = asyncio.run(main())
    print(json.dumps({"worker": "stopped", **stats.__dict__}), flush=True)
    return stats
