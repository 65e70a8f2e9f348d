"""The edge end to end: a real plant OPC UA server, the edge's secure subscription, and a small HTTP
gateway stand-in (uvicorn + FastAPI, validating the real payload models) that is down, failing, or up."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections import Counter

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter

from integration.canonical import PayloadV1, PayloadV2
from kernel.clock import ScaledClock
from kernel.net import free_port
from kernel.trace import GOODS_RECEIPT, OPERATION_CONFIRMATION
from live.collect import edges_lagging
from live.edge import Edge, EdgeConfig
from live.edge_store import EdgeStore
from live.opcua_server import access_for_run
from live.plant_host import PlantHost
from live.production_end import write_production_end
from scenarios.spec import Scenario
from tests.polling import poll, until

API_KEY = "key-P01"
pytestmark = pytest.mark.slow


def scenario(schema_version: str) -> Scenario:
    return Scenario.model_validate(
        {
            "name": "edge-test",
            "landscape": {
                "plants": [
                    {
                        "id": "P01",
                        "lines": 2,
                        "machines_per_line": 2,
                        "cycle_time": "10s",
                        "mtbf": "1000h",
                        "products": ["FG-100", "FG-200"],
                        "schema_version": schema_version,
                    }
                ]
            },
            "load": {"confirmation_interval": "2m", "lot_size": 50, "telemetry_interval": "1m"},
        }
    )


class GatewayStandIn:
    """Accepts ``/v1|v2/events`` batches after validating them; can be down, or answer 503/429 first."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.received: list[tuple[str, dict]] = []
        self.failures_left = 0
        self.failure_status = 503
        self.refused = 0
        app = FastAPI()
        adapters = {"v1": TypeAdapter(list[PayloadV1]), "v2": TypeAdapter(list[PayloadV2])}

        @app.post("/{version}/events")
        async def events(version: str, request: Request):
            if request.headers.get("X-Api-Key") != API_KEY:
                return JSONResponse({"detail": "unknown key"}, status_code=401)
            if self.failures_left > 0:
                self.failures_left -= 1
                self.refused += 1
                return JSONResponse({"detail": "busy"}, status_code=self.failure_status, headers={"Retry-After": "0.3"})
            body = await request.json()
            adapters[version].validate_python(body)
            self.received += [(version, item) for item in body]
            return JSONResponse({"accepted": len(body)}, status_code=202)

        self.app = app
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        poll(lambda: self.server.started, 10, 0.02, "gateway stand-in did not start")

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self.thread.join(10)
            self.server = None


def ids(gateway: GatewayStandIn) -> list[str]:
    return [item.get("id") or item.get("txn_id") for _, item in gateway.received]


@pytest.mark.parametrize("schema_version, buffer", [("v1", 1_000_000), ("v2", 12)])
def test_store_and_forward_delivers_every_event_exactly_once_after_an_outage(tmp_path, schema_version, buffer):
    """Gateway down → events pile up in the outbox (bounded and blocking with buffer 12) → gateway up →
    everything is posted once, and the confirmed quantities add up to exactly what the machines made."""
    sc = scenario(schema_version)
    epoch, speed = time.time(), 600.0
    host = PlantHost(sc, "P01", tmp_path, epoch=epoch, speed=speed, insecure=False, tick=0.2)
    host.start()
    gateway = GatewayStandIn()
    config = dataclasses.replace(EdgeConfig.from_scenario(sc, "P01"), buffer=buffer)
    clock = ScaledClock(epoch, speed)

    async def main():
        edge = Edge(config, tmp_path, host.url, gateway.url, API_KEY, clock, access_for_run(tmp_path, False))
        stop = asyncio.Event()
        task = asyncio.create_task(edge.run(stop))
        try:
            await until(edge.connected.is_set, 20, "the edge's secure OPC UA session")
            await until(lambda: edge.store.pending_count() >= min(buffer, 20), 20, "events held while gateway down")
            await until(lambda: edge.poster.failures > 0, 10, "a failed post while the gateway is down")
            assert gateway.received == []
            if buffer < 1_000:
                assert edge.store.pending_count() <= buffer  # block: the bound holds
            gateway.start()
            await until(lambda: len(gateway.received) >= 20, 20, "the backlog to be posted")
            # freeze production so totals can be compared, then let the last confirmation go out
            for m in range(config.machines):
                await asyncio.to_thread(host.command, m, "Stop")
            made = host.status()["good"]
            await until(lambda: sum(edge.aggregator.s.last_good) == made, 10, "the edge to see final counters")
            state = edge.aggregator.s

            def confirmed() -> bool:
                return not any(state.pend_good) and not state.confirm_due and not any(state.lots_ready)

            await until(confirmed, 20, "the last confirmations and lots to be drawn")
            # End production as the orchestrator does before its drain, then wait as its drain does: until the
            # edge stored everything made before the end (a full outbox held arrivals back) and sent it all.
            end = clock.now()
            write_production_end(tmp_path, end)
            await until(lambda: edges_lagging(tmp_path / "state", end) == [] and edge.store.pending_count() == 0,
                        30, "everything made before the end to be stored and sent")
        finally:
            stop.set()
            await task

    try:
        asyncio.run(main())
    finally:
        gateway.stop()
        host.stop()

    store = EdgeStore(tmp_path / "state" / "edge-P01.sqlite", buffer, "block")
    rows = store.rows()
    sent = [r["txn_id"] for r in rows if r["status"] == "sent"]
    posted = ids(gateway)
    assert Counter(posted).most_common(1)[0][1] == 1, "a txn id was posted twice"
    assert sorted(posted) == sorted(sent) and len(sent) == len(rows), "every outbox row posted exactly once"
    assert {version for version, _ in gateway.received} == {schema_version}
    oc = [r for r in rows if r["flow"] == OPERATION_CONFIRMATION]
    assert sum(r["qty"] for r in oc) == host.server.bank.good_total.sum()
    assert all(r["t_edge"] >= r["t_created"] - 1e-6 and r["t_sent"] >= r["t_edge"] for r in rows)
    gr = [r for r in rows if r["flow"] == GOODS_RECEIPT]
    for line, item in (("Line01", "FG-100"), ("Line02", "FG-200")):
        lots = [r for r in gr if r["line"] == line]
        assert {r["item"] for r in lots} <= {item}
        made_on_line = sum(r["qty"] for r in oc if r["line"] == line)
        assert len(lots) == made_on_line // 50
        assert [r["lot"] for r in lots] == [f"P01-L{line[-2:]}-{i:06d}" for i in range(1, len(lots) + 1)]
    seq = sorted(int(r["txn_id"].split("-")[-1]) for r in oc)
    assert seq == list(range(1, len(oc) + 1)), "txn ids are gap-free per plant and flow"
    assert store.telemetry_rows(), "telemetry aggregated at the edge"
    store.close()


def test_gateway_errors_and_rate_limits_are_retried_honouring_retry_after(tmp_path):
    sc = scenario("v2")
    epoch, speed = time.time(), 600.0
    host = PlantHost(sc, "P01", tmp_path, epoch=epoch, speed=speed, insecure=True, tick=0.2)
    host.start()
    gateway = GatewayStandIn()
    gateway.failures_left, gateway.failure_status = 3, 429
    gateway.start()
    config = EdgeConfig.from_scenario(sc, "P01")

    async def main():
        edge = Edge(
            config, tmp_path, host.url, gateway.url, API_KEY, ScaledClock(epoch, speed), access_for_run(tmp_path, True)
        )
        stop = asyncio.Event()
        task = asyncio.create_task(edge.run(stop))
        began = time.monotonic()
        try:
            await until(lambda: len(gateway.received) > 0, 20, "a post after the 429s")
            assert gateway.refused == 3
            assert time.monotonic() - began >= 0.9  # three Retry-After waits of 0.3 s
            gateway.failures_left, gateway.failure_status = 2, 503
            await until(
                lambda: gateway.refused == 5 and edge.store.pending_count() == 0 and len(gateway.received) > 10,
                20,
                "recovery after 503s",
            )
        finally:
            stop.set()
            await task
        return edge

    try:
        asyncio.run(main())
    finally:
        gateway.stop()
        host.stop()
    posted = ids(gateway)
    assert len(posted) == len(set(posted))
