"""The gateway's FastAPI app: routes only translate HTTP to :mod:`core` and :mod:`publisher` calls.

``POST /v1/events`` and ``POST /v2/events`` are answered by the plain-ASGI :mod:`lane` in front of
FastAPI (same :class:`~integration.gateway.core.IngestCore`); their FastAPI routes stay for the OpenAPI
document, which describes the raw-read bodies through ``openapi_extra``.
"""

import math
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from integration.canonical import PayloadV1, PayloadV2
from integration.gateway.core import CORRELATION_HEADER, UNKNOWN_KEY, IngestCore
from integration.gateway.lane import IngestLane
from integration.gateway.metrics import GatewayMetrics
from integration.gateway.publisher import DeadLetter, Publisher
from integration.gateway.settings import GatewaySettings
from integration.gc_tuning import tune_gc
from kernel.clock import ScaledClock


def _body_schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    """JSON schema of "one ``model`` or a list of them"; its definitions go into ``components``."""
    schema = TypeAdapter(model | list[model]).json_schema(ref_template="#/components/schemas/{model}")
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


class ReplayRequest(BaseModel):
    """Which dead letters to replay: by ``txn_ids``, or by a scenario-time range ``t_from``..``t_to``."""

    model_config = ConfigDict(extra="forbid")

    txn_ids: list[str] | None = None
    t_from: float | None = None
    t_to: float | None = None
    time_field: Literal["t_dead_lettered", "t_created"] = "t_dead_lettered"
    plant: str | None = None

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



def create_app(settings: GatewaySettings) -> FastAPI:
    """The gateway app for ``settings``; connects to NATS on startup and drains on shutdown."""
    clock = ScaledClock(settings.epoch, settings.speed)
    publisher = Publisher(settings.nats_url, clock, settings.status_index_size, settings.scan_limit)
    metrics = GatewayMetrics()

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

    async def plant_of(x_api_key: Annotated[str | None, Header()] = None) -> str:
        plant = core.key_to_plant.get(x_api_key or "")
        if plant is None:
            raise HTTPException(401, UNKNOWN_KEY, headers={"WWW-Authenticate": "ApiKey"})
        return plant

    async def admin(x_api_key: Annotated[str | None, Header()] = None) -> None:
        if not settings.admin_key or x_api_key != settings.admin_key:
            raise HTTPException(401, "admin routes need the admin key in X-Api-Key")

    Plant = Annotated[str, Depends(plant_of)]

    async def ingest(request: Request, plant: str, version: str, named_plant: str | None) -> JSONResponse:
        status, content, headers = await core.ingest(
            plant, version, named_plant, await request.body(), request.headers.get(CORRELATION_HEADER, "")
        )
        return JSONResponse(content, status, headers=headers)

    components: dict[str, Any] = {}

    def _ingest_doc(model: type[BaseModel]) -> dict[str, Any]:
        content = {"application/json": {"schema": _body_schema(model, components)}}
        return {"requestBody": {"required": True, "content": content}}

    responses: dict[int | str, dict[str, Any]] = {
        202: {"model": Accepted, "description": "every event stored durably"},
        401: {"description": "missing or unknown X-Api-Key"},
        403: {"description": "the request names another plant"},
        413: {"description": "batch too large"},
        422: {"description": "invalid body; `detail` lists each field and the fix"},
        429: {"description": "rate limit exceeded; see Retry-After"},
        503: {"description": "broker unavailable; retry the same batch (duplicates are dropped)"},
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

    @app.get("/v2/plants/{named}/events/{txn_id}", summary="Where a transaction stands at the broker")
    async def get_status(named: str, txn_id: str, plant: Plant) -> dict[str, Any]:
        if named != plant:
            raise HTTPException(403, f"plant: your key belongs to {plant}, not {named}")
        try:
            status = await publisher.status(plant, txn_id)
        except Exception as exc:  # noqa: BLE001 - broker errors become a retryable 503
            raise HTTPException(503, f"broker unavailable: {exc}") from exc
        if status is None:
            raise HTTPException(404, f"txn_id: {txn_id} was never stored for plant {plant}")
        return status

    @app.get("/health", summary="Liveness and broker connection")
    async def health() -> Response:
        ok = publisher.connected
        return JSONResponse({"status": "ok" if ok else "degraded", "broker": ok}, 200 if ok else 503)

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/admin/dlq", dependencies=[Depends(admin)], summary="Dead letters with their reasons")
    async def list_dlq(plant: str | None = None, limit: Annotated[int, Query(ge=1, le=100_000)] = 1000):
        dead = await publisher.dead_letters(plant, limit)
        return {"count": await publisher.dlq_count(), "messages": [d.summary() for d in dead]}

    @app.post("/admin/replay", dependencies=[Depends(admin)],
              summary="Republish dead letters (by txn ids or scenario-time range) to the event stream")
    async def replay(request: ReplayRequest):
        chosen = await publisher.replay(request.selects, request.plant)
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
