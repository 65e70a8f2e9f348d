"""The plant's receiving endpoint for enterprise-to-plant messages, hosted by the edge process.

``POST /downlink`` takes a batch of messages for this plant (in the order the enterprise sent them) and
applies each once to the plant's WMS and MES (:class:`live.plant_wms.PlantWms`): quality holds and
releases to the WMS and the MES, order releases and master-data versions to the MES (:mod:`live.plant_mes`). The
answer lists, per message, ``applied``, ``rejected`` (with the reason) or ``duplicate`` and when it first
reached the plant (scenario seconds), so the sender can record the delivery. The route only translates HTTP; it runs on
the edge's event loop, so the WMS's SQLite writes never race the edge's own.

Served by uvicorn on 127.0.0.1 inside the edge's loop; the enterprise reaches it through the plant's WAN
link (the fault proxy), like the edge reaches the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Literal

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from kernel.clock import ScaledClock
from kernel.trace import MASTER_DATA, ORDER_RELEASE, QUALITY_HOLD, QUALITY_RELEASE
from live.plant_wms import PlantWms


class DownlinkMessage(BaseModel):
    """One enterprise message to the plant."""

    model_config = ConfigDict(extra="forbid")

    txn_id: str = Field(min_length=1, max_length=128)
    flow: Literal[QUALITY_HOLD, QUALITY_RELEASE, ORDER_RELEASE, MASTER_DATA]  # type: ignore[valid-type]
    lot: str = Field(min_length=1, description="the lot (quality) or the order number (order release)")
    item: str = ""
    line: str = ""
    qty: float | None = Field(None, ge=0)
    unit: str = ""
    t_created: float = Field(ge=0, description="scenario seconds of the decision at the source")


class DownlinkBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plant: str = Field(min_length=1)
    messages: list[DownlinkMessage] = Field(max_length=10_000)


def plant_app(plant: str, wms: PlantWms, clock: ScaledClock) -> FastAPI:
    """The plant API of ``plant``: messages applied to ``wms`` at the clock's scenario time."""
    app = FastAPI(title=f"synctwin plant {plant}", version="1")

    @app.get("/health")
    def health() -> dict:
        return {"plant": plant, "shipped": wms.shipped, "refused": wms.refused}

    @app.post("/downlink")
    async def downlink(batch: DownlinkBatch) -> dict:
        if batch.plant != plant:
            from fastapi import HTTPException

            raise HTTPException(409, f"plant {batch.plant!r}: this endpoint serves plant {plant!r}")
        answers = wms.apply([m.model_dump() for m in batch.messages], clock.now())
        return {"plant": plant, "results": answers}

    return app


class _InLoopServer(uvicorn.Server):
    """uvicorn on the host's loop: the host owns the signals (SIGTERM stops the edge, which stops this)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_plant_api(app: FastAPI, port: int, stop: asyncio.Event) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` until ``stop`` is set."""
    server = _InLoopServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                          access_log=False))
    task = asyncio.create_task(server.serve())
    try:
        await stop.wait()
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
