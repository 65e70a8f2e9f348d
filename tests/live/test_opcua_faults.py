"""Faults of the plant's OPC UA server against a real edge: a session drop (the edge reconnects and
subscribes again) and a publishing stall (notifications stop, then resume), through the host's fault
endpoint, then a restart of the server with its counters back at zero. Each time the edge's counted units
end equal to the PLC's counters: nothing lost, nothing counted twice, no negative delta."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlsplit

import httpx
import pytest

from kernel.clock import ScaledClock
from live.edge import Edge, EdgeConfig
from live.opcua_faults import control_file
from live.opcua_server import access_for_run
from live.plant_host import PlantHost
from tests.live.opcua_support import scenario

pytestmark = pytest.mark.slow


async def until(check, timeout: float, message: str) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(message)
        await asyncio.sleep(0.05)


def counted(edge: Edge) -> int:
    """Good units the edge has accounted for: confirmations stored plus deltas not yet confirmed."""
    stored = edge.store.db.execute("SELECT coalesce(sum(qty), 0) FROM outbox WHERE flow = "
                                   "'operation_confirmation'").fetchone()[0]
    return int(stored) + sum(edge.aggregator.s.pend_good)


async def caught_up(edge: Edge, faults: str, before: int = 0) -> None:
    """The edge reaches the PLC's count read now, and is never ahead of it (a doubled delta would be);
    ``before``: units counted from an earlier incarnation of the server."""
    plc = await asyncio.to_thread(lambda: httpx.get(f"{faults}/faults").json()["good_total"])
    await until(lambda: sum(edge.aggregator.s.last_good) >= plc, 15, f"the edge never read the PLC's {plc} units")
    edge.process()
    after = await asyncio.to_thread(lambda: httpx.get(f"{faults}/faults").json()["good_total"])
    assert plc <= counted(edge) - before == sum(edge.aggregator.s.last_good) <= after


def test_session_drop_and_publishing_stall_lose_and_double_nothing(tmp_path):
    spec = scenario()
    clock = ScaledClock(time.time(), 600)
    host = PlantHost(spec, "P01", tmp_path, clock.epoch, clock.speed, insecure=True, tick=0.05)
    url = host.start()
    hosts = [host]

    def restart() -> str:
        """Start a new server on the stopped one's port (a fresh machine bank: counters at zero)."""
        hosts.append(PlantHost(spec, "P01", tmp_path, clock.epoch, clock.speed, port=urlsplit(url).port or 0,
                               insecure=True, tick=0.05))
        hosts[-1].start()
        return hosts[-1].faults_url

    try:
        faults = json.loads(control_file(tmp_path, "P01").read_text())["control"]
        assert faults == host.faults_url
        asyncio.run(_exercise(spec, tmp_path, url, faults, clock, hosts[-1].stop, restart))
    finally:
        hosts[-1].stop()


async def _exercise(spec, run_dir, url: str, faults: str, clock: ScaledClock, stop_server, restart) -> None:
    edge = Edge(EdgeConfig.from_scenario(spec, "P01"), run_dir, url, "http://127.0.0.1:9", "k", clock,
                access_for_run(run_dir, True), tick=0.05, publishing_interval_ms=50)
    stop = asyncio.Event()
    running = asyncio.create_task(edge.run(stop))
    post = lambda path, body=None: asyncio.to_thread(lambda: httpx.post(f"{faults}{path}", json=body or {}).json())  # noqa: E731
    try:
        await until(lambda: edge.connects == 1 and sum(edge.aggregator.s.last_good) > 0, 20, "the edge never read")

        dropped = await post("/faults/session_drop")
        assert dropped["dropped"] == 1 and dropped["sessions_dropped"] == 1
        await until(lambda: edge.connects == 2, 20, "the edge did not reconnect after the session drop")
        await caught_up(edge, faults)

        stalled = await post("/faults/stall", {"seconds": 1.5})
        assert stalled["stalled"] is True
        await until(lambda: httpx.get(f"{faults}/faults").json()["withheld_subscriptions"] == 1, 5, "not paused")
        edge.process()
        frozen = sum(edge.aggregator.s.last_good)
        await asyncio.sleep(0.5)
        edge.process()
        assert sum(edge.aggregator.s.last_good) == frozen  # no notification passes during the stall ...
        assert httpx.get(f"{faults}/faults").json()["good_total"] > frozen  # ... while the PLC produces
        await until(lambda: not httpx.get(f"{faults}/faults").json()["stalled"], 5, "the stall did not end")
        await caught_up(edge, faults)  # the first notifications after the stall carry the new counts
        assert edge.connects == 2  # the session survived the stall

        # The first server's units are counted once it is gone: read while it still ran, a few more would
        # arrive before the restart and be taken for the new server's.
        await asyncio.to_thread(stop_server)
        await until(lambda: not edge.connected.is_set(), 30, "the edge did not notice the server stop")
        edge.process()
        before = counted(edge)  # units of the first server
        faults = await asyncio.to_thread(restart)
        await until(lambda: edge.connects == 3, 30, "the edge did not reconnect to the restarted server")
        await caught_up(edge, faults, before)  # the new server's counts, from zero, each once
        assert edge.server_restarts == 1
        assert edge.store.db.execute("SELECT count(*) FROM outbox WHERE qty <= 0 AND flow IN "
                                     "('operation_confirmation', 'scrap')").fetchone()[0] == 0
    finally:
        stop.set()
        await running
