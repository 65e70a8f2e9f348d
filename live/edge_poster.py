"""The edge's gateway poster: drains the outbox to ``/v1/events`` or ``/v2/events`` in batches.

Rows are marked sent only after the gateway's 202; while the gateway is unreachable or answers
5xx/429 the batch is retried with backoff (honouring ``Retry-After``); a permanent 4xx for a batch is
narrowed down to the offending events, which are marked rejected with the gateway's reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

import httpx

from integration.http1 import retry_after_seconds
from kernel.clock import ScaledClock
from live.edge_clock import instance_id
from live.edge_store import EdgeStore

log = logging.getLogger(__name__)


def payload(row: dict) -> dict:
    """The gateway body of one outbox row in its plant's schema version (v1 legacy or v2 canonical)."""
    if row["schema_version"] == "v1":
        return {
            "id": row["txn_id"],
            "type": row["flow"],
            "material": row["item"],
            "quantity": row["qty"],
            "uom": row["unit"],
            "line": row["line"] or "",
            "lot": row["lot"] or "",
            "timestamp": row["t_created"],
        }
    return {
        "txn_id": row["txn_id"],
        "correlation_id": row["correlation_id"] or "",
        "flow": row["flow"],
        "item": row["item"],
        "qty": row["qty"],
        "unit": row["unit"],
        "line": row["line"] or "",
        "lot": row["lot"] or "",
        "source": row["source"] or "MES",
        "target": row["target"] or "ERP",
        "t_created": row["t_created"],
    }


class GatewayPoster:
    """Drains the outbox to the gateway: batches, retries with backoff, sent only after 202."""

    def __init__(
        self,
        store: EdgeStore,
        gateway_url: str,
        api_key: str,
        schema_version: str,
        clock: ScaledClock,
        batch_size: int = 200,
        wall_rate: float = math.inf,
        backoff: tuple[float, float] = (0.2, 5.0),
        idle_poll: float = 0.1,
    ):
        """``backoff`` (first, longest wait) and ``idle_poll`` are wall seconds: the host scales the scenario's.
        Each request also carries this edge's instance id, clock and last round trip (``X-Edge-...``):
        how the gateway tells a skewed clock or a second edge (:mod:`integration.gateway.sources`)."""
        self.store, self.clock = store, clock
        self.url = f"{gateway_url.rstrip('/')}/{schema_version}/events"
        self.headers = {"X-Api-Key": api_key, "X-Edge-Instance": instance_id(store.path)}
        self.rtt = 0.0  # scenario seconds the last request took (the gateway allows that much link delay)
        self.batch_size, self.wall_rate = batch_size, wall_rate
        self.backoff_initial, self.backoff_max = backoff
        self.idle_poll = idle_poll
        self.posts = self.failures = 0
        self.draining = False  # a failed post left a backlog: drain it at ``wall_rate``

    async def run(self, stop: asyncio.Event) -> None:
        """Post until ``stop`` is set."""
        delay = self.backoff_initial
        async with httpx.AsyncClient(timeout=10.0) as http:
            while not stop.is_set():
                rows = self.store.next_batch(self.batch_size)
                if not rows:
                    await wait_or_stop(stop, self.idle_poll)
                    continue
                began = time.monotonic()
                wait = await self._post(http, rows, delay)
                if wait is None:
                    delay = self.backoff_initial
                    # The drain rate paces only the backlog a failure left (as the virtual edge does,
                    # virtual/store_forward.py); a batch shorter than the limit emptied the outbox.
                    if self.draining and math.isfinite(self.wall_rate):
                        await wait_or_stop(stop, len(rows) / self.wall_rate - (time.monotonic() - began))
                    self.draining = self.draining and len(rows) >= self.batch_size
                else:
                    self.draining = True
                    self.failures += 1
                    await wait_or_stop(stop, wait)
                    delay = min(self.backoff_max, delay * 2)

    async def _post(self, http: httpx.AsyncClient, rows: list[dict], delay: float) -> float | None:
        """Post ``rows``; None on success, else wall seconds to wait before trying again."""
        try:
            headers = {**self.headers, "X-Edge-Clock": f"{self.clock.now():.3f}",
                       "X-Edge-Rtt": f"{self.rtt:.3f}"}
            began = time.monotonic()
            try:
                response = await http.post(self.url, json=[payload(r) for r in rows], headers=headers)
            finally:
                self.rtt = (time.monotonic() - began) * self.clock.speed
        except httpx.HTTPError as exc:
            log.info("gateway unreachable (%s); retrying in %.1f s", type(exc).__name__, delay)
            return delay
        self.posts += 1
        if response.status_code == 202:
            self.store.mark_sent([r["txn_id"] for r in rows], self.clock.now())
            return None
        if response.status_code == 429 or response.status_code >= 500:
            return retry_after_seconds(response.headers.get("Retry-After"), delay)
        if len(rows) > 1:  # a permanent 4xx for the batch: find the offending events one by one
            for row in rows:
                wait = await self._post(http, [row], delay)
                if wait is not None:
                    return wait
            return None
        detail = response.text[:300].replace("\n", " ")
        self.store.mark_rejected(rows[0]["txn_id"], f"gateway_{response.status_code}: {detail}")
        return None


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` (at least one loop turn), or less when ``stop`` is set meanwhile."""
    if seconds <= 0:
        await asyncio.sleep(0)
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


