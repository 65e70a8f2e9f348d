"""Reading the broker through the gateway (real uvicorn process, real JetStream): concurrent DLQ and status reads
never fail, a fresh gateway's first DLQ read works, status survives a restart, a broker outage logs one line per
state change."""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx
import nats
import pytest

from integration.broker import dead_letter, ensure_streams
from tests.integration.gateway_support import start_gateway
from tests.polling import poll

pytestmark = pytest.mark.slow

P02, ADMIN = "key-p02", "admin-key"
READERS, ROUNDS = 20, 5


def event(txn: str) -> dict:
    return {"txn_id": txn, "flow": "scrap", "item": "RM-9", "qty": 1, "unit": "EA", "t_created": 2.0}


@pytest.fixture(scope="module")
def fresh_gateway(broker, credentials_file, tmp_path_factory):
    """A gateway started for this module alone; status reads not rate-limited in the way of the hammering."""
    proc = start_gateway(broker, credentials_file, env={"SYNCTWIN_GATEWAY_STATUS_RATE_LIMIT": "100000/s"},
                             log_dir=tmp_path_factory.mktemp("reads-logs"))
    yield proc
    proc.stop()


async def dead_letter_some(url: str, txns: list[str]) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_streams(js)
    for txn in txns:
        body = json.dumps({**event(txn), "plant": "P02", "correlation_id": txn}).encode()
        await dead_letter(js, body, "P02", "scrap", txn, txn, "unmapped_item", "no mapping")
    await nc.close()


def test_the_first_dlq_read_of_a_fresh_gateway_answers(fresh_gateway):
    r = httpx.get(f"{fresh_gateway.url}/admin/dlq", headers={"X-Api-Key": ADMIN}, timeout=10)
    assert r.status_code == 200 and r.json()["count"] >= 0


def test_concurrent_dlq_and_status_reads_never_fail(fresh_gateway, broker):
    with httpx.Client(base_url=fresh_gateway.url, timeout=30) as c:
        assert c.post("/v2/events", json=[event(f"rd-{i}") for i in range(50)],
                      headers={"X-Api-Key": P02}).status_code == 202
    asyncio.run(dead_letter_some(broker.url, ["rd-0", "rd-1"]))
    expected = {"/admin/dlq": 200, "/v2/plants/P02/events/rd-7": 200, "/v2/plants/P02/events/rd-1": 200,
                "/v2/plants/P02/events/never-seen": 404}

    async def reader(client: httpx.AsyncClient) -> list[tuple[str, int, str]]:
        failures = []
        for _ in range(ROUNDS):
            for path, code in expected.items():
                key = ADMIN if path.startswith("/admin") else P02
                r = await client.get(path, headers={"X-Api-Key": key})
                dead = path.endswith("rd-1")
                if r.status_code != code or (dead and r.json()["status"] != "dead_lettered"):
                    failures.append((path, r.status_code, r.text))
        return failures

    async def hammer() -> list[tuple[str, int, str]]:
        limits = httpx.Limits(max_connections=READERS)
        async with httpx.AsyncClient(base_url=fresh_gateway.url, timeout=30, limits=limits) as client:
            results = await asyncio.gather(*(reader(client) for _ in range(READERS)))
        return [f for r in results for f in r]

    assert asyncio.run(hammer()) == []


def test_status_of_an_id_survives_a_gateway_restart(broker, credentials_file, tmp_path):
    first = start_gateway(broker, credentials_file, log_dir=tmp_path)
    try:
        r = httpx.post(f"{first.url}/v2/events", json=event("rs-1"), headers={"X-Api-Key": P02}, timeout=10)
        assert r.status_code == 202
    finally:
        first.stop()
    second = start_gateway(broker, credentials_file, log_dir=tmp_path)
    try:
        with httpx.Client(base_url=second.url, headers={"X-Api-Key": P02}, timeout=10) as client:
            started = time.perf_counter()  # one client: its set-up is not part of the reads' time
            r = client.get("/v2/plants/P02/events/rs-1")
            assert r.status_code == 200 and r.json()["status"] == "stored" and r.json()["stream_seq"] > 0
            missing = client.get("/v2/plants/P02/events/rs-404")
            assert missing.status_code == 404
            assert time.perf_counter() - started < 2.0  # one look-up by subject each, no stream scan
    finally:
        second.stop()


def test_a_broker_outage_logs_one_line_per_state_change(tmp_path, credentials_file):
    from integration.broker import EmbeddedNats

    server = EmbeddedNats(tmp_path / "nats", die_with_parent=True)
    server.start()
    gw = start_gateway(server, credentials_file, log_dir=tmp_path)
    try:
        health = f"{gw.url}/health"
        server.kill()
        poll(lambda: httpx.get(health, timeout=5).status_code == 503, 10, message="gateway sees the outage")
        poll(lambda: "still reconnecting" in gw.log_path.read_text(), 10, message="the reconnecting line")
        server.start()  # same port, same data
        poll(lambda: httpx.get(health, timeout=5).status_code == 200, 20, message="gateway reconnected")
        poll(lambda: "connection back" in gw.log_path.read_text(), 10, message="the back line")
    finally:
        gw.stop()
        server.stop()
    log = gw.log_path.read_text()
    assert log.count("broker connection lost") == 1
    assert log.count("still reconnecting") == 1
    assert log.count("connection back") == 1
    back = next(line for line in log.splitlines() if "connection back" in line)
    attempts = int(re.search(r"and (\d+) failed attempts \(outage 1\)", back).group(1))
    assert attempts >= 1, back
    assert "Traceback" not in log


def test_poison_dead_letters_are_listed(fresh_gateway, broker):
    async def poison() -> None:
        nc = await nats.connect(broker.url)
        js = nc.jetstream()
        for i, body in enumerate((b"not json", b"[1, 2]", b'{"txn_id": "p-3", "t_created": "soon"}')):
            await dead_letter(js, body, "P03", "scrap", f"poison-{i}", "", "invalid_payload", "cannot parse")
        await nc.close()

    asyncio.run(poison())
    r = httpx.get(f"{fresh_gateway.url}/admin/dlq", params={"plant": "P03"}, headers={"X-Api-Key": ADMIN})
    assert r.status_code == 200
    listed = r.json()["messages"]
    assert [m["reason"] for m in listed] == ["invalid_payload"] * 3 and {m["t_created"] for m in listed} == {None}
