"""The ERP twin as an HTTP service for the live engine: postings into a durable SQLite ledger.

One posting server per ERP (postings are served one at a time, each taking a service time drawn from
the scenario's :class:`~scenarios.spec.ErpSpec`, scaled by the run's speed), an optional API rate limit
counted in scenario time, and a mode switch for faults: ``normal``, ``outage`` (503) and ``slow``
(service time times ``factor``). Like a real ERP it does **not** de-duplicate: the same ``txn_id``
posted twice is two ledger rows; idempotency is the integration layer's job.

Every row is committed before the 201 leaves, so the ledger survives ``kill -9``.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from integration.gateway.ratelimit import TokenBucket
from integration.trace import FLOWS
from live.clock import ScaledClock
from scenarios.spec import ErpSpec, LatencySpec

Flow = Literal[FLOWS]  # type: ignore[valid-type]
LEDGER_COLUMNS = ("txn_id", "flow", "plant", "item", "qty", "unit", "erp", "t_posted")


class Posting(BaseModel):
    """A posting request from an integration worker."""

    model_config = ConfigDict(extra="forbid")

    txn_id: str = Field(min_length=1, max_length=128)
    flow: Flow
    plant: str = Field(min_length=1)
    item: str = Field(min_length=1)
    qty: float
    unit: str = Field(min_length=1)
    t_created: float
    correlation_id: str = ""


class ModeChange(BaseModel):
    """``POST /admin/mode`` body."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["normal", "outage", "slow"]
    factor: float = Field(5.0, ge=1, description="slow mode: service time multiplier")


class Ledger:
    """The ERP's ledger table in SQLite (WAL; each posting committed on its own)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # committed rows survive a process kill
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "txn_id TEXT NOT NULL, flow TEXT NOT NULL, plant TEXT NOT NULL, item TEXT NOT NULL, "
            "qty REAL NOT NULL, unit TEXT NOT NULL, erp TEXT NOT NULL, t_posted REAL NOT NULL)"
        )
        self.db.execute("CREATE INDEX IF NOT EXISTS ledger_txn ON ledger (txn_id)")

    def post(self, posting: Posting, erp: str, t_posted: float) -> int:
        """Append one row and commit it; return its row id."""
        cur = self.db.execute(
            "INSERT INTO ledger (txn_id, flow, plant, item, qty, unit, erp, t_posted) "
            "VALUES (?,?,?,?,?,?,?,?)",
            (posting.txn_id, posting.flow, posting.plant, posting.item, posting.qty, posting.unit, erp,
             t_posted),
        )
        return int(cur.lastrowid or 0)

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


def sample_service_time(spec: LatencySpec, rng: np.random.Generator) -> float:
    """One service time in scenario seconds; lognormal keeps ``mean`` as its mean."""
    if spec.mean <= 0:
        return 0.0
    if spec.distribution == "constant":
        return spec.mean
    if spec.distribution == "lognormal":
        return float(rng.lognormal(math.log(spec.mean) - spec.sigma**2 / 2, spec.sigma))
    return float(rng.exponential(spec.mean))


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

    def __post_init__(self) -> None:
        if self.spec.rate_limit:
            self.bucket = TokenBucket(self.spec.rate_limit, max(1.0, self.spec.rate_limit))

    async def post(self, posting: Posting) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Serve one posting: (HTTP status, body, extra headers)."""
        if self.spec.network_latency:
            await asyncio.sleep(self.clock.wall_delay(self.spec.network_latency))
        if self.mode == "outage":
            return 503, {"detail": f"ERP {self.kind} is down (outage)"}, {"Retry-After": "1"}
        if self.bucket is not None:
            wait = self.bucket.take(1, self.clock.now())
            if wait:
                wall = self.clock.wall_delay(wait)
                body = {"detail": f"ERP {self.kind} API rate limit of {self.spec.rate_limit:g}/s exceeded",
                        "retry_after_s": wait}
                # Retry-After is whole wall seconds (RFC 9110); the precise wait, in scenario seconds,
                # rides along for clients on the scaled clock.
                return 429, body, {"Retry-After": str(max(1, math.ceil(wall))),
                                   "X-Retry-After-Scenario": f"{wait:.6f}"}
        async with self.server:
            service = sample_service_time(self.spec.service, self.rng)
            if self.mode == "slow":
                service *= self.factor
            if service:
                await asyncio.sleep(self.clock.wall_delay(service))
            t_posted = self.clock.now()
            posting_id = self.ledger.post(posting, self.kind, t_posted)
        return 201, {"txn_id": posting.txn_id, "posting_id": posting_id, "t_posted": t_posted}, {}


def create_erp_app(kind: str, spec: ErpSpec, db: Path | str, clock: ScaledClock, seed: int = 0) -> FastAPI:
    """The ERP twin's HTTP API over a ledger in ``db`` (created if missing, appended to if present)."""
    ledger = Ledger(db)
    twin = ErpTwin(kind, spec, clock, ledger, np.random.default_rng(seed))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        ledger.close()

    app = FastAPI(title=f"synctwin ERP twin ({kind})", lifespan=lifespan)
    app.state.twin = twin

    @app.post("/postings", status_code=201, summary="Post one transaction to the ledger (no de-duplication)")
    async def post(posting: Posting, request: Request) -> JSONResponse:
        status, body, headers = await twin.post(posting)
        correlation = request.headers.get("X-Correlation-Id") or posting.correlation_id or posting.txn_id
        return JSONResponse(body, status, headers={"X-Correlation-Id": correlation, **headers})

    @app.get("/ledger", summary="Ledger rows for collection")
    async def read_ledger(
        since: float = -math.inf, after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=1_000_000)] = 100_000, txn_id: str | None = None,
    ) -> dict[str, Any]:
        rows = ledger.rows(since, after, limit, txn_id)
        return {"erp": kind, "rows": rows, "next_after": rows[-1]["id"] if rows else after}

    @app.post("/admin/mode", summary="Switch normal / outage / slow")
    async def set_mode(change: ModeChange) -> dict[str, Any]:
        twin.mode = change.mode
        twin.factor = change.factor if change.mode == "slow" else 1.0
        return {"erp": kind, "mode": twin.mode, "factor": twin.factor}

    @app.get("/admin/mode")
    async def get_mode() -> dict[str, Any]:
        return {"erp": kind, "mode": twin.mode, "factor": twin.factor}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "erp": kind, "mode": twin.mode}

    return app
