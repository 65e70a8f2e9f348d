"""The ERP twin as an HTTP service for the live engine: postings into a durable SQLite ledger.

One posting server per ERP (postings are served one at a time, each taking a service time drawn from
the scenario's :class:`~scenarios.spec.ErpSpec`, scaled by the run's speed), an optional API rate limit
counted in scenario time, and a mode switch for faults: ``normal``, ``outage`` (503) and ``slow``
(service time times ``factor``), and the share-based modes of :mod:`live.erp_faults` (``throttle``: 429
storms with Retry-After, ``errors``: 500s, ``lose_answer``: commit, then drop the connection unanswered).
Like a real ERP it does **not** de-duplicate: the same ``txn_id``
posted twice is two ledger rows; idempotency is the integration layer's job.

Two posting routes: ``POST /postings`` (one posting) and ``POST /postings/batch`` (a JSON list of
postings, all or nothing). A batch keeps the scenario's capacity model: its service time is the sum of
one draw per posting, served by the same single posting server, and the rate limit counts postings,
so batching saves HTTP and commit overhead but not ERP capacity. Its rows are written with one
``executemany`` in one SQLite transaction and share the commit time as ``t_posted``.

Every row is committed before the 201 leaves (WAL, ``synchronous=NORMAL``), so the ledger survives
``kill -9``; a power cut is not simulated.
"""

from __future__ import annotations

import asyncio
import json
import math
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from integration.canonical import Number
from integration.gateway.ingest import json_safe_errors
from integration.gateway.ratelimit import TokenBucket
from integration.sqlite import connect
from kernel.clock import ScaledClock
from kernel.trace import FLOWS
from live.erp_faults import DROP, ErpApp, InjectedFaults, drop_connection, loses_answer, refusal
from live.erp_inflight import InFlight
from live.erp_quality import add_quality_routes
from scenarios.spec import ErpSpec
from twins.erp import service_time

Flow = Literal[FLOWS]  # type: ignore[valid-type]
MAX_BATCH = 10_000  # postings per batch request; bounds the service's memory and one commit's size
LOOKUP_WAIT_S = 5.0  # wall seconds a ledger lookup waits for in-flight postings of its ids before a 503
LEDGER_COLUMNS = ("txn_id", "flow", "plant", "item", "qty", "unit", "erp", "t_posted")


class Posting(BaseModel):
    """A posting request from an integration worker."""

    model_config = ConfigDict(extra="forbid")

    txn_id: str = Field(min_length=1, max_length=128)
    flow: Flow
    plant: str = Field(min_length=1)
    item: str = Field(min_length=1)
    qty: Number  # finite, a JSON number: no NaN or Infinity can reach the ledger
    unit: str = Field(min_length=1)
    t_created: Number
    correlation_id: str = ""


_POSTINGS = TypeAdapter(Annotated[list[Posting], Field(min_length=1, max_length=MAX_BATCH)])


class LedgerLookup(BaseModel):
    """``POST /ledger/lookup`` body: which of these transactions does the ledger hold?"""

    model_config = ConfigDict(extra="forbid")

    txn_ids: list[str] = Field(min_length=1, max_length=MAX_BATCH)


class ModeChange(BaseModel):
    """``POST /admin/mode`` body."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["normal", "outage", "slow", "throttle", "errors", "lose_answer"]
    factor: Number = Field(5.0, ge=1, description="slow mode: service time multiplier")
    share: Number = Field(1.0, ge=0, le=1, description="throttle / errors / lose_answer: share of requests hit")
    retry_after: Number = Field(1.0, ge=0, description="throttle: Retry-After in wall seconds")


class Ledger:
    """The ERP's ledger table in SQLite (WAL; each posting committed on its own)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.db = connect(self.path)  # committed rows survive a process kill
        # The ledger is append-only, so the plain rowid (max + 1) already gives consecutive ids that are
        # never reused; AUTOINCREMENT would add a sqlite_sequence update to every posting (~1.5 µs).
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, "
            "txn_id TEXT NOT NULL, flow TEXT NOT NULL, plant TEXT NOT NULL, item TEXT NOT NULL, "
            "qty REAL NOT NULL, unit TEXT NOT NULL, erp TEXT NOT NULL, t_posted REAL NOT NULL, "
            "t_arrival REAL, t_service_start REAL)"  # queueing at the ERP, read into the trace (kernel/trace.py)
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS ledger_txn ON ledger (txn_id)")

    def post(self, posting: Posting, erp: str, t_posted: float, t_arrival: float | None = None,
             t_service_start: float | None = None) -> int:
        """Append one row and commit it; return its row id. ``t_arrival``/``t_service_start``: when the
        request reached the ERP and when its service began (scenario seconds)."""
        cur = self.db.execute(
            "INSERT INTO ledger (txn_id, flow, plant, item, qty, unit, erp, t_posted, t_arrival, t_service_start) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)",
            (posting.txn_id, posting.flow, posting.plant, posting.item, posting.qty, posting.unit, erp,
             t_posted, t_arrival, t_service_start),
        )
        return int(cur.lastrowid or 0)

    def post_many(self, postings: list[Posting], erp: str, t_posted: float, t_arrival: float | None = None,
                  t_service_start: float | None = None) -> tuple[int, int]:
        """Append all ``postings`` in one transaction (all or nothing); return the first and last row id."""
        rows = [(p.txn_id, p.flow, p.plant, p.item, p.qty, p.unit, erp, t_posted, t_arrival, t_service_start)
                for p in postings]
        self.db.execute("BEGIN")
        try:
            self.db.executemany(
                "INSERT INTO ledger (txn_id, flow, plant, item, qty, unit, erp, t_posted, t_arrival, t_service_start) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            last = int(self.db.execute("SELECT last_insert_rowid()").fetchone()[0])
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        # One writer under the posting server's lock: the batch's ids are consecutive.
        return last - len(rows) + 1, last

    def holding(self, txn_ids: list[str]) -> list[str]:
        """The distinct ``txn_ids`` that have at least one ledger row (one indexed query)."""
        cur = self.db.execute(
            "SELECT DISTINCT txn_id FROM ledger WHERE txn_id IN (SELECT value FROM json_each(?))",
            (json.dumps(txn_ids),),
        )
        return [row[0] for row in cur.fetchall()]

    def rows(self, since: float = -math.inf, after: int = 0, limit: int = 100_000,
             txn_id: str | None = None) -> list[dict[str, Any]]:
        """Rows posted at scenario time >= ``since`` with id > ``after`` (of one ``txn_id``), oldest first."""
        where, args = "id > ? AND t_posted >= ?", [after, since if math.isfinite(since) else -1e300]
        if txn_id is not None:
            where += " AND txn_id = ?"
            args.append(txn_id)
        cur = self.db.execute(
            "SELECT id, " + ", ".join(LEDGER_COLUMNS) + f" FROM ledger WHERE {where} ORDER BY id LIMIT ?",
            (*args, limit),
        )
        names = ("id", *LEDGER_COLUMNS)
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def close(self) -> None:
        """Close the database."""
        self.db.close()


Answer = tuple[int, dict[str, Any], dict[str, str]]


@dataclass
class ErpTwin:
    """Mode, rate limit and the single posting server of one ERP."""

    kind: str
    spec: ErpSpec
    clock: ScaledClock
    ledger: Ledger
    rng: np.random.Generator
    mode: str = "normal"
    factor: float = 1.0
    server: asyncio.Lock = field(default_factory=asyncio.Lock)
    bucket: TokenBucket | None = None
    share: float = 1.0
    retry_after: float = 1.0
    injected: InjectedFaults = field(default_factory=InjectedFaults)
    in_flight: InFlight = field(default_factory=InFlight)  # lookups wait for these (read-your-writes)

    def __post_init__(self) -> None:
        if self.spec.rate_limit:
            self.bucket = TokenBucket(self.spec.rate_limit, max(1.0, self.spec.rate_limit))

    async def _admit(self, n: int) -> Answer | None:
        """Network latency, outage and rate limit for a request carrying ``n`` postings; None admits it."""
        if self.spec.network_latency:
            await asyncio.sleep(self.clock.wall_delay(self.spec.network_latency))
        if self.mode == "outage":
            return 503, {"detail": f"ERP {self.kind} is down (outage)"}, {"Retry-After": "1"}
        refused = refusal(self.mode, self.share, self.retry_after, self.rng, self.kind, self.injected)
        if refused is not None:
            return refused
        if self.bucket is not None:
            wait = self.bucket.take(n, self.clock.now())
            if wait == math.inf:
                burst = int(self.bucket.capacity)
                return 413, {"detail": f"a batch of {n} postings exceeds ERP {self.kind}'s API burst of {burst} "
                                       f"(rate limit {self.spec.rate_limit:g}/s); send at most {burst} per request"}, {}
            if wait:
                wall = self.clock.wall_delay(wait)
                body = {"detail": f"ERP {self.kind} API rate limit of {self.spec.rate_limit:g}/s exceeded",
                        "retry_after_s": wait}
                # Retry-After is whole wall seconds (RFC 9110); the precise wait, in scenario seconds,
                # rides along for clients on the scaled clock.
                return 429, body, {"Retry-After": str(max(1, math.ceil(wall))),
                                   "X-Retry-After-Scenario": f"{wait:.6f}"}
        return None

    async def _serve(self, service: float) -> float:
        """Hold the posting server for ``service`` scenario seconds (times the slow factor)."""
        if self.mode == "slow":
            service *= self.factor
        if service:
            await asyncio.sleep(self.clock.wall_delay(service))
        return self.clock.now()

    async def post(self, posting: Posting) -> Answer:
        """Serve one posting: (HTTP status, body, extra headers)."""
        async with self.in_flight.holding((posting.txn_id,)):
            return await self._post(posting)

    async def _post(self, posting: Posting) -> Answer:
        refused = await self._admit(1)
        if refused is not None:
            return refused
        t_arrival = self.clock.now()
        async with self.server:
            t_start = self.clock.now()
            t_posted = await self._serve(service_time(self.spec.service, self.rng))
            posting_id = self.ledger.post(posting, self.kind, t_posted, t_arrival, t_start)
        if loses_answer(self.mode, self.share, self.rng, self.injected):
            return DROP, {}, {}
        return 201, {"txn_id": posting.txn_id, "posting_id": posting_id, "t_posted": t_posted}, {}

    async def post_batch(self, postings: list[Posting]) -> Answer:
        """Serve a batch as a unit: every posting lands, or (503, 429, 413) none does."""
        async with self.in_flight.holding(p.txn_id for p in postings):
            return await self._post_batch(postings)

    async def _post_batch(self, postings: list[Posting]) -> Answer:
        refused = await self._admit(len(postings))
        if refused is not None:
            return refused
        t_arrival = self.clock.now()
        async with self.server:
            t_start = self.clock.now()
            t_posted = await self._serve(service_time(self.spec.service, self.rng, len(postings)))
            first, last = self.ledger.post_many(postings, self.kind, t_posted, t_arrival, t_start)
        if loses_answer(self.mode, self.share, self.rng, self.injected):
            return DROP, {}, {}
        return 201, {"posted": len(postings), "first_posting_id": first, "last_posting_id": last,
                     "t_posted": t_posted}, {}


def create_erp_app(kind: str, spec: ErpSpec, db: Path | str, clock: ScaledClock, seed: int = 0) -> FastAPI:
    """The ERP twin's HTTP API over a ledger in ``db`` (created if missing, appended to if present)."""
    ledger = Ledger(db)
    twin = ErpTwin(kind, spec, clock, ledger, np.random.default_rng(seed))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        ledger.close()
        holds.close()

    app = ErpApp(title=f"synctwin ERP twin ({kind})", lifespan=lifespan)
    app.state.twin = twin
    holds = add_quality_routes(app, twin, db)  # quality holds from the QMS (live/erp_quality.py)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each input, and JSON cannot carry a NaN or an Infinity sent in
        return JSONResponse({"detail": json_safe_errors(exc.errors())}, 422)

    @app.post("/postings", status_code=201, summary="Post one transaction to the ledger (no de-duplication)")
    async def post(posting: Posting, request: Request) -> JSONResponse:
        status, body, headers = await twin.post(posting)
        if status == DROP and drop_connection(request):
            return JSONResponse({}, 500)  # never sent: the connection is gone
        correlation = request.headers.get("X-Correlation-Id") or posting.correlation_id or posting.txn_id
        return JSONResponse(body, status, headers={"X-Correlation-Id": correlation, **headers})

    @app.post("/postings/batch", status_code=201,
              summary="Post a list of transactions in one ledger transaction (all or nothing, no de-duplication)",
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                  "type": "array", "items": {"$ref": "#/components/schemas/Posting"},
                  "minItems": 1, "maxItems": MAX_BATCH}}}}})
    async def post_batch(request: Request) -> JSONResponse:
        # Parsed and validated in one pass by pydantic-core: FastAPI's json.loads + validate_python
        # was half of the service's CPU per posting. Errors keep FastAPI's 422 shape (loc from "body").
        try:
            postings = _POSTINGS.validate_json(await request.body())
        except ValidationError as exc:
            raise RequestValidationError(
                [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]) from None
        status, body, headers = await twin.post_batch(postings)
        if status == DROP and drop_connection(request):
            return JSONResponse({}, 500)  # never sent: the connection is gone
        correlation = request.headers.get("X-Correlation-Id") or postings[0].correlation_id or postings[0].txn_id
        return JSONResponse(body, status, headers={"X-Correlation-Id": correlation, **headers})

    @app.post("/ledger/lookup", summary="Which of these transactions the ledger holds")
    async def lookup(query: LedgerLookup) -> Any:
        if not await twin.in_flight.settled(query.txn_ids, LOOKUP_WAIT_S):
            return JSONResponse({"detail": "some of these postings are still being processed; ask again"}, 503,
                                headers={"Retry-After": "1"})
        return {"erp": kind, "found": ledger.holding(query.txn_ids)}

    @app.get("/ledger", summary="Ledger rows for collection")
    async def read_ledger(
        since: float = -math.inf, after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1_000_000)] = 100_000, txn_id: str | None = None,
    ) -> dict[str, Any]:
        rows = ledger.rows(since, after, limit, txn_id)
        return {"erp": kind, "rows": rows, "next_after": rows[-1]["id"] if rows else after}

    @app.post("/admin/mode", summary="Switch normal / outage / slow / throttle / errors / lose_answer")
    async def set_mode(change: ModeChange) -> dict[str, Any]:
        twin.mode = change.mode
        twin.factor = change.factor if change.mode == "slow" else 1.0
        twin.share, twin.retry_after = change.share, change.retry_after
        return await get_mode()

    @app.get("/admin/mode")
    async def get_mode() -> dict[str, Any]:
        return {"erp": kind, "mode": twin.mode, "factor": twin.factor, "share": twin.share,
                "retry_after": twin.retry_after, "injected": twin.injected.as_json(),
                "in_flight": len(twin.in_flight)}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "erp": kind, "mode": twin.mode}

    return app
