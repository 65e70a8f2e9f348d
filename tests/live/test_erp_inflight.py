"""The ERP twin's ledger lookup is read-your-writes: a lookup of transactions whose posting is still queued
for the single posting server waits for their commit instead of answering "not there" (which would make a
worker that lost the answer post them again)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from live.erp_inflight import InFlight
from tests.live.erp_support import erp, posting, scenario

pytestmark = pytest.mark.slow


def test_lookup_waits_for_postings_still_in_flight(tmp_path: Path):
    service = erp(scenario(tmp_path, mean="6s"), tmp_path / "erp.sqlite")  # 0.1 s wall a posting at speed 60
    try:
        asyncio.run(_lookup_during_a_queued_batch(service.url))
    finally:
        service.stop()


async def _lookup_during_a_queued_batch(url: str) -> None:
    first = [posting(f"A-{i}") for i in range(10)]  # holds the posting server for about a second
    queued = [posting("B-1"), posting("B-2")]
    async with httpx.AsyncClient(base_url=url, timeout=30) as a, httpx.AsyncClient(base_url=url, timeout=30) as b, \
            httpx.AsyncClient(base_url=url, timeout=30) as admin:
        posts = [asyncio.create_task(a.post("/postings/batch", json=first)),
                 asyncio.create_task(b.post("/postings/batch", json=queued))]
        deadline = time.monotonic() + 20
        while (await admin.get("/admin/mode")).json()["in_flight"] < len(first) + len(queued):
            assert not all(p.done() for p in posts), "both batches were answered before the lookup"
            assert time.monotonic() < deadline, "the two batches never were in flight together"
            await asyncio.sleep(0.01)  # poll interval; yields to the two posting tasks
        found = (await admin.post("/ledger/lookup", json={"txn_ids": ["B-1", "B-2"]})).json()["found"]
        assert sorted(found) == ["B-1", "B-2"]
        assert [r.status_code for r in await asyncio.gather(*posts)] == [201, 201]


def test_settled_reports_a_timeout_while_ids_stay_in_flight():
    async def scenario_() -> tuple[bool, bool, bool]:
        flight = InFlight()
        release = asyncio.Event()

        async def hold() -> None:
            async with flight.holding(["X"]):
                await release.wait()

        task = asyncio.create_task(hold())
        await asyncio.sleep(0)
        timed_out = await flight.settled(["X"], 0.05)
        other = await flight.settled(["Y"], 0.05)
        release.set()
        await task
        return timed_out, other, await flight.settled(["X"], 0.05)

    assert asyncio.run(scenario_()) == (False, True, True)
