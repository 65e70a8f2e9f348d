"""A scaled-out integration backbone as real processes (broker nodes, ERP twin, gateway, workers) and a
steady load on it that retries what the gateway refuses, for the cluster tests."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from integration.gateway.settings import generate_credentials
from live.procs import ServiceSet
from live.stack_plan import Scale, ServiceCommands

PLANTS = ["P01", "P02"]
SCENARIO = {
    "name": "cluster-backbone",
    "landscape": {
        "erp": {"kind": "legacy", "service": {"mean": "0s", "distribution": "constant"}, "network_latency": 0},
        "items": {"FG-100": {"unit": "EA"}},
        "plants": [{"id": p, "schema_version": "v2"} for p in PLANTS],
    },
}


@dataclass
class Backbone:
    """The started services, their URLs and each plant's API key."""

    services: ServiceSet
    urls: dict[str, str]
    keys: dict[str, str]
    ledger: Path


def start_backbone(run_dir: Path, services: ServiceSet, scale: Scale, speed: float = 60.0) -> Backbone:
    """Start broker node(s) and the ERP twin, then the gateway and the workers, with the live stack's
    command lines (:class:`live.stack_plan.ServiceCommands`)."""
    state = run_dir / "state"
    state.mkdir(parents=True, exist_ok=True)
    scenario = run_dir / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    creds = generate_credentials(PLANTS)
    (state / "credentials.json").write_text(json.dumps(creds))
    plan = ServiceCommands(scenario, run_dir, state / "credentials.json", ("legacy",), creds["plants"], time.time(),
                           speed, scale=scale)
    urls: dict[str, str] = {}
    for tier in ([*scale.broker_names, "erp-legacy"], ["gateway", *scale.worker_names]):
        started = services.start_many({n: plan.command(n, urls) for n in tier})
        urls.update({n: s.url for n, s in started.items()})
        urls["broker"] = scale.broker_url(urls)
    return Backbone(services, urls, creds["plants"], state / "erp-legacy.sqlite")


@dataclass
class LoadResult:
    """What a steady load saw: ids answered 202, refusals by status, the longest answer."""

    accepted: set[str] = field(default_factory=set)
    refused: dict[int, int] = field(default_factory=dict)
    retry_after_missing: int = 0
    slowest_s: float = 0.0
    accepted_after_fault: int = 0
    faulted_at: float | None = None  # monotonic time the fault was done
    recovered_after_s: float | None = None  # from the fault to the first batch accepted after it


def _batch(plant: str, n: int, size: int) -> list[dict]:
    lot = f"{plant}-LOT{n // 5}"  # five batches per lot: the lot's postings must reach the ERP in order
    return [{"txn_id": f"{plant}-{n}-{j}", "flow": "operation_confirmation", "item": "FG-100", "qty": 1.0,
             "unit": "EA", "line": "L01", "lot": lot, "t_created": float(n * size + j)} for j in range(size)]


async def steady_load(gateway: str, keys: dict[str, str], seconds: float, fault_at: float,
                      fault: Callable[[], None], every_s: float = 0.1, size: int = 20, after_s: float = 2.0,
                      cap_s: float = 30.0) -> LoadResult:
    """Each plant posts a batch of ``size`` every ``every_s`` for ``seconds``, and on until ``after_s``
    past the first batch accepted after ``fault`` (run at ``fault_at``), at most ``cap_s``. A refused
    batch is posted again, same ids, after its ``Retry-After``, until it is accepted."""
    result = LoadResult()
    start = time.monotonic()

    def going() -> bool:
        now = time.monotonic() - start
        if now >= cap_s:
            return False
        back = result.recovered_after_s
        return now < seconds or back is None or now < fault_at + back + after_s

    async def plant_loop(client: httpx.AsyncClient, plant: str) -> None:
        n = 0
        while going():
            body = _batch(plant, n, size)
            while True:
                sent = time.monotonic()
                reply = await client.post("/v2/events", json=body, headers={"X-Api-Key": keys[plant]})
                result.slowest_s = max(result.slowest_s, time.monotonic() - sent)
                if reply.status_code == 202:
                    result.accepted.update(e["txn_id"] for e in body)
                    if result.faulted_at is not None and sent > result.faulted_at:
                        result.accepted_after_fault += len(body)
                        if result.recovered_after_s is None:
                            result.recovered_after_s = time.monotonic() - result.faulted_at
                    break
                result.refused[reply.status_code] = result.refused.get(reply.status_code, 0) + 1
                if "retry-after" not in reply.headers:
                    result.retry_after_missing += 1
                await asyncio.sleep(min(1.0, float(reply.headers.get("retry-after", "1"))))
            n += 1
            await asyncio.sleep(max(0.0, start + n * every_s - time.monotonic()))

    async def inject() -> None:
        await asyncio.sleep(fault_at)
        await asyncio.to_thread(fault)
        result.faulted_at = time.monotonic()

    async with httpx.AsyncClient(base_url=gateway, timeout=30.0) as client:
        await asyncio.gather(*(plant_loop(client, p) for p in keys), inject())
    return result


def ledger_ids(ledger: Path) -> list[str]:
    """The txn_id of every ledger row, in posting order."""
    with sqlite3.connect(ledger) as db:
        return [t for (t,) in db.execute("SELECT txn_id FROM ledger ORDER BY id")]


def out_of_order(ids: list[str]) -> list[str]:
    """Ids posted after a later one of the same lot (ids ``<plant>-<batch>-<j>``, five batches a lot)."""
    last: dict[str, tuple[int, int]] = {}
    late = []
    for txn in ids:
        plant, n, j = txn.rsplit("-", 2)
        lot, seq = f"{plant}-{int(n) // 5}", (int(n), int(j))
        if seq < last.get(lot, (-1, -1)):
            late.append(txn)
        last[lot] = max(seq, last.get(lot, (-1, -1)))
    return late
