"""The edge poster's drain rate paces only the backlog a failed post left, never the steady stream
(the virtual edge, ``virtual/store_forward.py``, forwards the same way)."""

from __future__ import annotations

import asyncio
import time

from kernel.clock import ScaledClock
from live.edge_poster import GatewayPoster
from live.edge_store import EdgeStore, OutboxEvent


def _store(tmp_path, n: int) -> EdgeStore:
    store = EdgeStore(tmp_path / "edge-P01.sqlite", 1_000_000)
    events = [OutboxEvent(txn_id=f"P01-IM-{i:06d}", correlation_id="", flow="inventory_move", plant="P01",
                          line="Line01", item="FG-100", lot="", qty=1.0, unit="EA", schema_version="v2",
                          t_created=float(i)) for i in range(n)]
    store.add(events, 0.0)
    return store


def _drain_seconds(tmp_path, fail_first: int) -> tuple[float, int]:
    """Wall seconds the poster takes to send 1,000 stored events at a drain rate of 500 events/s, with
    ``fail_first`` failed posts first (the gateway's answers are stood in for; this tests the pacing)."""
    store = _store(tmp_path, 1000)
    poster = GatewayPoster(store, "http://127.0.0.1:9", "key", "v2", ScaledClock(time.time(), 1.0),
                           batch_size=100, wall_rate=500.0, backoff=(0.01, 0.01))
    failures = [fail_first]

    async def post(http, rows, delay):
        if failures[0] > 0:
            failures[0] -= 1
            return 0.01
        store.mark_sent([r["txn_id"] for r in rows], 0.0)
        return None

    poster._post = post

    async def main() -> float:
        stop = asyncio.Event()
        began = time.monotonic()
        task = asyncio.create_task(poster.run(stop))
        while store.pending_count():
            await asyncio.sleep(0.005)
        elapsed = time.monotonic() - began
        stop.set()
        await task
        return elapsed

    elapsed = asyncio.run(main())
    store.close()
    return elapsed, poster.failures


def test_a_backlog_after_a_failed_post_drains_at_the_drain_rate(tmp_path):
    elapsed, failures = _drain_seconds(tmp_path, fail_first=1)
    assert failures == 1
    assert elapsed >= 1.8  # 1,000 events at 500/s: paced


def test_without_a_failure_the_stream_is_not_paced(tmp_path):
    elapsed, failures = _drain_seconds(tmp_path, fail_first=0)
    assert failures == 0
    assert elapsed < 1.2  # unpaced: ten local batches (2 s if paced)
