"""The gateway's FastAPI app: routes only translate HTTP to :mod:`core` and :mod:`publisher` calls.

``POST /v1/events`` and ``POST /v2/events`` are answered by the plain-ASGI :mod:`lane` in front of
FastAPI (same :class:`~integration.gateway.core.IngestCore`); their FastAPI routes stay for the OpenAPI
document, which describes the raw-read bodies through ``openapi_extra``.
"""

import math
import time
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import APIKeyHeader
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from integration.canonical import Number, PayloadV1, PayloadV2
from integration.gateway.core import CORRELATION_HEADER, UNKNOWN_KEY, IngestCore
from integration.gateway.ingest import json_safe_errors
from integration.gateway.lane import IngestLane
from integration.gateway.metrics import GatewayMetrics
from integration.gateway.publisher import DeadLetter, Publisher
from integration.gateway.ratelimit import TokenBucket
from integration.gateway.settings import GatewaySettings
from integration.gc_tuning import tune_gc
from kernel.clock import ScaledClock


def _body_schema(model: type[BaseModel], max_batch: int, components: dict[str, Any]) -> dict[str, Any]:
    """JSON schema of "one ``model`` or a list of 1..``max_batch`` of them"; definitions go into ``components``."""
    batch = Annotated[list[model], Field(min_length=1, max_length=max_batch)]
    schema = TypeAdapter(model | batch).json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    return schema


def _with_components(app: FastAPI, components: dict[str, Any]) -> None:
    """Make ``app.openapi()`` include schemas referenced only from ``openapi_extra`` bodies."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# A plant id as it appears in subjects (events.<plant>.<flow>): one NATS subject token.
PLANT_ID = r"^[A-Za-z0-9_-]{1,64}$"


class ReplayRequest(BaseModel):
    """Which dead letters to replay: by ``txn_ids``, or by a scenario-time range ``t_from``..``t_to``."""

    # the schema says what the validator checks: at least one selector (none of them may be null)
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "anyOf": [{"required": ["txn_ids"]}, {"required": ["t_from"]}, {"required": ["t_to"]}]})

    txn_ids: list[str] = Field(None, description="replay these transactions")  # type: ignore[assignment]
    t_from: Number = Field(None, description="scenario seconds, inclusive")  # type: ignore[assignment]
    t_to: Number = Field(None, description="scenario seconds, inclusive")  # type: ignore[assignment]
    time_field: Literal["t_dead_lettered", "t_created"] = "t_dead_lettered"
    plant: str = Field(None, pattern=PLANT_ID, description="only this plant's dead letters")  # type: ignore[assignment]

    @model_validator(mode="after")
    def _one_selector(self) -> "ReplayRequest":
        if self.txn_ids is None and self.t_from is None and self.t_to is None:
            raise ValueError("give txn_ids, or t_from and/or t_to (scenario seconds)")
        return self

    def selects(self, dead: DeadLetter) -> bool:
        """True if ``dead`` is chosen by this request."""
        if self.txn_ids is not None and dead.txn_id not in self.txn_ids:
            return False
        t = getattr(dead, self.time_field)
        lo = -math.inf if self.t_from is None else self.t_from
        hi = math.inf if self.t_to is None else self.t_to
        return lo <= t <= hi if (self.t_from is not None or self.t_to is not None) else True


class Accepted(BaseModel):
    accepted: int = Field(description="events durably stored (PubAck received for each)")
    duplicates: int = Field(0, description="of those, copies the broker already held")
    correlation_ids: list[str]


class Problem(BaseModel):
    """Why a request was refused, and what to do."""

    model_config = ConfigDict(extra="allow")

    detail: str


class FieldProblem(BaseModel):
    field: str = Field(description="where in the body, e.g. body[3].qty")
    message: str = Field(description="what is wrong and how to fix it")
    found: str | int | float | bool | None = Field(None, description="the value sent (non-finite numbers as text)")


class InvalidBody(BaseModel):
    detail: list[FieldProblem]


class RateLimited(Problem):
    retry_after_s: float


class NotStored(Problem):
    stored: int = Field(description="events of the request the broker did store (retry them all: duplicates drop)")


class TxnStatus(BaseModel):
    """Where a transaction stands at the broker."""

    model_config = ConfigDict(extra="allow")

    txn_id: str
    plant: str
    status: Literal["stored", "dead_lettered"]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    broker: bool


def _retry_after(description: str) -> dict[str, Any]:
    return {"Retry-After": {"description": description, "required": True, "schema": {"type": "string"}}}


UNAUTHORIZED = {401: {"model": Problem, "description": "missing or unknown X-Api-Key"}}
BROKER_DOWN = {503: {"model": Problem, "description": "broker unavailable; retry",
                     "headers": _retry_after("seconds to wait")}}



def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway app for ``settings``; connects to NATS on startup and drains on shutdown."""
    clock = ScaledClock(settings.epoch, settings.speed)
    publisher = Publisher(settings.nats_url, clock, settings.scan_limit)
    metrics = GatewayMetrics()
    read_buckets = {p: TokenBucket(settings.status_rate_limit, settings.status_rate_limit * settings.burst_seconds)
                    for p in settings.plant_keys}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await publisher.connect(settings.connect_timeout)
        yield
        await publisher.close()

    app = FastAPI(
        title="synctwin gateway",
        version="2",
        description="Plant-to-enterprise event ingestion. Plants authenticate with X-Api-Key; "
        "the plant is taken from the key, never from the body.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.publisher = publisher
    app.state.metrics = metrics

    core = IngestCore(settings, publisher, metrics)
    api_key = APIKeyHeader(name="X-Api-Key", auto_error=False, scheme_name="ApiKey",
                           description="the key issued for your plant (admin routes: the admin key)")

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes each input, and JSON cannot carry a NaN or an Infinity sent in
        return JSONResponse({"detail": json_safe_errors(exc.errors())}, 422)

    async def plant_of(x_api_key: Annotated[str | None, Security(api_key)] = None) -> str:
        plant = core.key_to_plant.get(x_api_key or "")
        if plant is None:
            raise HTTPException(401, UNKNOWN_KEY, headers={"WWW-Authenticate": "ApiKey"})
        return plant

    async def admin(x_api_key: Annotated[str | None, Security(api_key)] = None) -> None:
        if not settings.admin_key or x_api_key != settings.admin_key:
            raise HTTPException(401, "admin routes need the admin key in X-Api-Key",
                                headers={"WWW-Authenticate": "ApiKey"})

    Plant = Annotated[str, Depends(plant_of)]

    async def ingest(request: Request, plant: str, version: str, named_plant: str | None) -> JSONResponse:
        status, content, headers = await core.ingest(
            plant, version, named_plant, await request.body(), request.headers.get(CORRELATION_HEADER, "")
        )
        return JSONResponse(content, status, headers=headers)

    components: dict[str, Any] = {}

    def _ingest_doc(model: type[BaseModel]) -> dict[str, Any]:
        content = {"application/json": {"schema": _body_schema(model, settings.max_batch, components)}}
        return {"requestBody": {"required": True, "content": content}}

    responses: dict[int | str, dict[str, Any]] = {
        202: {"model": Accepted, "description": "every event stored durably"},
        **UNAUTHORIZED,
        403: {"model": Problem, "description": "the request names another plant"},
        413: {"model": Problem, "description": "body or batch too large, or beyond the rate limit's burst"},
        422: {"model": InvalidBody, "description": "invalid body; `detail` lists each field and the fix"},
        429: {"model": RateLimited, "description": "rate limit exceeded", "headers": _retry_after("seconds")},
        503: {"model": NotStored, "description": "broker unavailable; retry the same batch (duplicates are dropped)",
              "headers": _retry_after("seconds to wait")},
    }

    @app.post("/v1/events", status_code=202, responses=responses, openapi_extra=_ingest_doc(PayloadV1),
              summary="Ingest legacy (v1) events: one object or a list")
    async def post_v1(request: Request, plant: Plant,
                      plant_query: Annotated[str | None, Query(alias="plant")] = None) -> JSONResponse:
        return await ingest(request, plant, "v1", plant_query)

    @app.post("/v2/events", status_code=202, responses=responses, openapi_extra=_ingest_doc(PayloadV2),
              summary="Ingest canonical (v2) events: one object or a list")
    async def post_v2(request: Request, plant: Plant,
                      plant_query: Annotated[str | None, Query(alias="plant")] = None) -> JSONResponse:
        return await ingest(request, plant, "v2", plant_query)

    @app.post("/v2/plants/{named}/events", status_code=202, responses=responses,
              openapi_extra=_ingest_doc(PayloadV2), summary="Ingest v2 events under an explicit plant path")
    async def post_v2_plant(request: Request, named: str, plant: Plant) -> JSONResponse:
        return await ingest(request, plant, "v2", named)

    status_responses: dict[int | str, dict[str, Any]] = {
        200: {"model": TxnStatus, "description": "stored (stream sequence) or dead-lettered (reason)"},
        **UNAUTHORIZED,
        403: {"model": Problem, "description": "the path names another plant than the key's"},
        404: {"model": Problem, "description": "the gateway never stored this txn_id for this plant"},
        429: {"model": RateLimited, "description": "status-read rate limit exceeded",
              "headers": _retry_after("seconds")},
        **BROKER_DOWN,
    }

    def broker_down(exc: Exception) -> HTTPException:
        return HTTPException(503, f"broker unavailable, retry: {type(exc).__name__}: {exc}".rstrip(": "),
                             headers={"Retry-After": "1"})

    @app.get("/v2/plants/{named}/events/{txn_id}", summary="Where a transaction stands at the broker",
             responses=status_responses, response_model=None)
    async def get_status(named: str, txn_id: str, plant: Plant) -> Response:
        if named != plant:
            raise HTTPException(403, f"plant: your key belongs to {plant}, not {named}")
        wait = read_buckets[plant].take(1, time.monotonic())
        if wait:
            detail = f"status reads of {plant} exceed {settings.status_rate_limit:g}/s; retry in {wait:.3f} s"
            return JSONResponse({"detail": detail, "retry_after_s": wait}, 429,
                                headers={"Retry-After": str(max(1, math.ceil(wait)))})
        try:
            status = await publisher.status(plant, txn_id)
        except Exception as exc:  # noqa: BLE001 - broker errors become a retryable 503
            raise broker_down(exc) from None
        if status is None:
            raise HTTPException(404, f"txn_id: {txn_id} was never stored for plant {plant}")
        return JSONResponse(status)

    @app.get("/health", summary="Liveness and broker connection", response_model=Health,
             responses={503: {"model": Health, "description": "the broker connection is down"}})
    async def health() -> Response:
        ok = publisher.connected
        return JSONResponse({"status": "ok" if ok else "degraded", "broker": ok}, 200 if ok else 503)

    @app.get("/metrics", summary="Prometheus metrics (text exposition format 0.0.4)", response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text format"}})
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/admin/dlq", dependencies=[Depends(admin)], summary="Dead letters with their reasons",
             responses={**UNAUTHORIZED, **BROKER_DOWN})
    async def list_dlq(plant: Annotated[str | None, Query(pattern=PLANT_ID)] = None,
                       limit: Annotated[int, Query(ge=1, le=100_000)] = 1000):
        try:
            dead = await publisher.dead_letters(plant, limit)
            return {"count": await publisher.dlq_count(), "messages": [d.summary() for d in dead]}
        except Exception as exc:  # noqa: BLE001 - broker errors become a retryable 503
            raise broker_down(exc) from None

    @app.get("/admin/sources", dependencies=[Depends(admin)], responses={**UNAUTHORIZED},
             summary="Each plant's edge instances, its clock offset and the episodes flagged (skew, second source)")
    async def sources():
        return core.sources.report()

    @app.post("/admin/replay", dependencies=[Depends(admin)],
              responses={400: {"model": Problem, "description": "the body is not JSON text"}, **UNAUTHORIZED,
                         **BROKER_DOWN},
              summary="Republish dead letters (by txn ids or scenario-time range) to the event stream")
    async def replay(request: ReplayRequest):
        try:
            chosen = await publisher.replay(request.selects, request.plant)
        except Exception as exc:  # noqa: BLE001 - broker errors become a retryable 503
            raise broker_down(exc) from None
        missing = sorted(set(request.txn_ids or ()) - {d.txn_id for d in chosen})
        return {"replayed": len(chosen), "txn_ids": [d.txn_id for d in chosen], "not_found": missing}

    _with_components(app, components)
    app.add_middleware(IngestLane, core=core)
    return app


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` (settings from ``SYNCTWIN_GATEWAY_*`` variables); it runs
    once in each uvicorn worker process, so it also tunes that process's garbage collector."""
    app = create_app(GatewaySettings())
    tune_gc()
    return app
