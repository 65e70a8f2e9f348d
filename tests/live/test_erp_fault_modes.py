"""The ERP twin's fault modes as a real process: 429 storms with Retry-After, 500s on a share of calls, and
*commit then lose the answer* -- and a real worker posting through lost answers exactly once although the
twin does not de-duplicate (the intent it records plus the ledger lookup before it retries)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from integration.broker import EmbeddedNats
from integration.canonical import CanonicalEvent
from integration.erp_client import ErpClient
from integration.workers import Worker, WorkerConfig
from live.procs import Service
from scenarios.loader import parse_scenario
from tests.polling import poll

pytestmark = pytest.mark.slow
SPEED = 60.0
SCENARIO = {
    "name": "erp-faults",
    "landscape": {
        "erp": {"kind": "legacy", "service": {"mean": "0.3s", "distribution": "constant"}, "network_latency": "0s"},
        "items": {"FG-100": {"unit": "EA"}},
        "integration": {"retry": {"initial": "2s", "max_attempts": 20}},
        "plants": [{"id": "P01", "products": ["FG-100"]}],
    },
}


@pytest.fixture(scope="module")
def erp_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("erp-faults")
    scenario = tmp / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    args = [sys.executable, "-m", "synctwin.commands.live_services", "erp", "--kind", "legacy", "--scenario",
            str(scenario), "--db", str(tmp / "erp.sqlite"), "--epoch", str(time.time()), "--speed", str(SPEED)]
    service = Service("erp-legacy", args, tmp / "logs")
    service.start()
    yield service.url
    service.stop()


def posting(txn: str) -> dict:
    return {"txn_id": txn, "flow": "goods_receipt", "plant": "P01", "item": "FG-100", "qty": 1.0, "unit": "EA",
            "t_created": 1.0}


def rows(http: httpx.Client, txn: str) -> int:
    return len(http.get("/ledger", params={"txn_id": txn}).json()["rows"])


def test_throttle_and_errors_refuse_before_posting(erp_url):
    with httpx.Client(base_url=erp_url, timeout=10) as http:
        mode = http.post("/admin/mode", json={"mode": "throttle", "share": 1.0, "retry_after": 3}).json()
        assert mode["mode"] == "throttle"
        r = http.post("/postings", json=posting("t-1"))
        assert r.status_code == 429 and r.headers["Retry-After"] == "3" and rows(http, "t-1") == 0
        http.post("/admin/mode", json={"mode": "errors", "share": 0.5})
        codes = [http.post("/postings", json=posting(f"e-{i}")).status_code for i in range(40)]
        assert set(codes) == {201, 500} and 8 <= codes.count(500) <= 32
        assert sum(rows(http, f"e-{i}") for i in range(40)) == codes.count(201)
        injected = http.get("/admin/mode").json()["injected"]
        assert injected["throttled"] == 1 and injected["errors"] == codes.count(500)
        bad = http.post("/admin/mode", json={"mode": "errors", "share": 2})
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "share"
        http.post("/admin/mode", json={"mode": "normal"})


def test_lose_answer_commits_then_drops_the_connection(erp_url):
    with httpx.Client(base_url=erp_url, timeout=10) as http:
        http.post("/admin/mode", json={"mode": "lose_answer", "share": 1.0})
        with pytest.raises(httpx.TransportError):
            http.post("/postings", json=posting("lost-1"))
        assert rows(http, "lost-1") == 1  # committed although nobody heard the answer

        async def via_worker_client() -> tuple[bool | None, set[str] | None]:
            client = ErpClient("legacy", erp_url)
            try:
                answer = await client.post_batch([posting("lost-2"), posting("lost-3")])
                return answer.landed, await client.posted_among(["lost-2", "lost-3", "never"])
            finally:
                await client.close()

        landed, found = asyncio.run(via_worker_client())
        assert landed is None  # the worker's client knows it cannot know ...
        assert found == {"lost-2", "lost-3"}  # ... and the ledger lookup tells it
        # A naive client retrying until it hears 201 posts twice: the twin does not de-duplicate.
        http.post("/admin/mode", json={"mode": "normal"})
        http.post("/postings", json=posting("lost-1"))
        assert rows(http, "lost-1") == 2


def test_worker_posts_each_event_once_through_lost_answers(erp_url, tmp_path: Path):
    txns = [f"w-{i:03d}" for i in range(80)]

    async def scenario_run() -> dict:
        async with httpx.AsyncClient(base_url=erp_url, timeout=10) as http:
            await http.post("/admin/mode", json={"mode": "lose_answer", "share": 0.5})
            with EmbeddedNats(tmp_path / "nats") as broker:
                cfg = WorkerConfig(broker.url, parse_scenario(SCENARIO), {"legacy": erp_url}, tmp_path,
                                   epoch=time.time(), speed=SPEED, lanes=4, fetch_batch=5)
                ready, stop = asyncio.Event(), asyncio.Event()
                task = asyncio.create_task(Worker(cfg, on_ready=ready.set).run(stop))
                await asyncio.wait_for(ready.wait(), 15)
                await _publish(broker.url, txns)
                try:
                    await asyncio.to_thread(poll, lambda: _all_posted(erp_url, txns), 60.0, 0.2,
                                            "not every event reached the ledger")
                finally:
                    stop.set()
                    await asyncio.wait_for(task, 15)
            injected = (await http.get("/admin/mode")).json()["injected"]
            await http.post("/admin/mode", json={"mode": "normal"})
            ledger = (await http.get("/ledger", params={"limit": 100000})).json()["rows"]
        return {"injected": injected, "ledger": ledger}

    result = asyncio.run(scenario_run())
    assert result["injected"]["answers_lost"] >= 2, "the fault never took effect"
    counts: dict[str, int] = {}
    for row in result["ledger"]:
        if row["txn_id"].startswith("w-"):
            counts[row["txn_id"]] = counts.get(row["txn_id"], 0) + 1
    assert set(counts) == set(txns)
    assert {t: n for t, n in counts.items() if n != 1} == {}  # lost answers, yet no posting twice


def _all_posted(url: str, txns: list[str]) -> bool:
    rows = httpx.post(f"{url}/ledger/lookup", json={"txn_ids": txns}, timeout=5).json()["found"]
    return set(rows) == set(txns)


async def _publish(url: str, txns: list[str]) -> None:
    import nats

    from integration.broker import ensure_streams, event_headers

    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_streams(js)
    for txn in txns:
        event = CanonicalEvent(txn_id=txn, correlation_id=txn, flow="goods_receipt", plant="P01", item="FG-100",
                               qty=1.0, unit="EA", t_created=1.0)
        await js.publish("events.P01.goods_receipt", event.model_dump_json().encode(),
                         headers=event_headers(txn, txn))
    await nc.close()
