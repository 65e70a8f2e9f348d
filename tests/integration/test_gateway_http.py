"""The gateway as a real process (uvicorn) on a real broker: the plant-facing contract over HTTP."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import nats
import pytest

from integration.broker import DLQ_STREAM, dead_letter, ensure_streams
from integration.canonical import CanonicalEvent
from tests.integration.gateway_support import read_stream

pytestmark = pytest.mark.slow

P01, P02, P03, ADMIN = "key-p01", "key-p02", "key-p03", "admin-key"


def v2(txn: str, **extra) -> dict:
    return {"txn_id": txn, "flow": "operation_confirmation", "item": "FG-100", "qty": 4, "unit": "EA",
            "t_created": 12.5, **extra}


@pytest.fixture(scope="module")
def client(gateway):
    with httpx.Client(base_url=gateway.url, timeout=30) as c:
        yield c


def post(client, key, body, version="v2", headers=None):
    return client.post(f"/{version}/events", content=json.dumps(body), headers={"X-Api-Key": key, **(headers or {})})


def test_health_openapi_and_metrics(client):
    assert client.get("/health").json() == {"status": "ok", "broker": True}
    spec = client.get("/openapi.json").json()
    assert {"/v1/events", "/v2/events", "/admin/replay", "/admin/dlq"} <= set(spec["paths"])
    assert "PayloadV2" in spec["components"]["schemas"]
    post(client, P01, v2("m-1"))
    text = client.get("/metrics").text
    assert 'gateway_events_accepted_total{plant="P01",version="v2"}' in text


def test_single_v2_event_is_stored_with_correlation(client, broker):
    r = post(client, P01, v2("s-1", correlation_id="order-9"), headers={"X-Correlation-Id": "req-42"})
    assert r.status_code == 202
    assert r.json() == {"accepted": 1, "duplicates": 0, "correlation_ids": ["order-9"]}
    assert r.headers["X-Correlation-Id"] == "req-42"
    msg = [m for m in read_stream(broker.url) if m.headers["Nats-Msg-Id"] == "s-1"]
    assert len(msg) == 1 and msg[0].subject == "events.P01.operation_confirmation.s-1"
    assert msg[0].headers["X-Correlation-Id"] == "order-9"
    event = CanonicalEvent.model_validate_json(msg[0].data)
    assert (event.plant, event.schema_version, event.qty) == ("P01", "v2", 4)


def test_v1_payload_is_mapped_to_canonical(client, broker):
    body = {"id": "v1-1", "type": "goods_receipt", "material": "FG-200", "quantity": 150, "uom": "EA",
            "lot": "LOT-3", "timestamp": 99.0}
    r = post(client, P02, [body], version="v1")
    assert r.status_code == 202 and r.json()["correlation_ids"] == ["LOT-3"]
    assert "X-Correlation-Id" in r.headers  # generated when the client sent none
    msg = [m for m in read_stream(broker.url, "events.P02.>") if m.headers["Nats-Msg-Id"] == "v1-1"]
    event = CanonicalEvent.model_validate_json(msg[0].data)
    assert (event.item, event.qty, event.lot, event.schema_version, event.t_created) == (
        "FG-200", 150, "LOT-3", "v1", 99.0)


def test_batch_of_500_is_stored_and_retry_is_deduplicated(client, broker):
    batch = [v2(f"b-{i}") for i in range(500)]
    r = post(client, P01, batch)
    assert r.status_code == 202 and r.json()["accepted"] == 500 and r.json()["duplicates"] == 0
    again = post(client, P01, batch)  # the client retries after a lost response: nothing stored twice
    assert again.status_code == 202 and again.json()["duplicates"] == 500
    stored = [m for m in read_stream(broker.url, "events.P01.>") if m.headers["Nats-Msg-Id"][:2] == "b-"]
    assert sorted(m.headers["Nats-Msg-Id"] for m in stored) == sorted(f"b-{i}" for i in range(500))


def test_422_names_the_field(client):
    r = post(client, P01, [v2("ok-1"), v2("bad-1", qty="lots")])
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "body[1].qty"
    r = post(client, P01, v2("bad-2", plant="P02"))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body.plant"


def test_segmentation(client):
    assert post(client, "nope", v2("x-1")).status_code == 401
    assert client.post("/v2/events", content=json.dumps(v2("x-2"))).status_code == 401
    r = client.post("/v2/events", params={"plant": "P02"}, content=json.dumps(v2("x-3")),
                    headers={"X-Api-Key": P01})
    assert r.status_code == 403 and "P01" in r.json()["detail"]
    r = client.post("/v2/plants/P02/events", content=json.dumps(v2("x-4")), headers={"X-Api-Key": P01})
    assert r.status_code == 403
    assert client.post("/v2/plants/P01/events", content=json.dumps(v2("x-5")),
                       headers={"X-Api-Key": P01}).status_code == 202
    # status reads: own plant yes, another plant's transaction no
    assert client.get("/v2/plants/P01/events/x-5", headers={"X-Api-Key": P01}).json()["status"] == "stored"
    assert client.get("/v2/plants/P01/events/x-5", headers={"X-Api-Key": P02}).status_code == 403
    assert client.get("/v2/plants/P02/events/x-5", headers={"X-Api-Key": P02}).status_code == 404
    assert client.get("/admin/dlq", headers={"X-Api-Key": P01}).status_code == 401


def test_status_reports_broker_time(client):
    before = time.time()
    post(client, P01, v2("st-1"))
    status = client.get("/v2/plants/P01/events/st-1", headers={"X-Api-Key": P01}).json()
    assert status["status"] == "stored" and status["stream_seq"] > 0
    assert status["t_broker"] > 0  # scenario seconds since the gateway's epoch
    assert time.time() - before < 10


def test_429_with_retry_after_on_a_burst(client):
    # P03's bucket holds 2000 events (2000/s, 1 s burst): a burst of 3 x 900 cannot all pass
    # (sent at once: the bucket is checked on arrival, before the events are stored)
    bodies = [json.dumps([v2(f"rl-{j}-{i}") for i in range(900)]) for j in range(3)]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=str(client.base_url), timeout=30) as c:
            return await asyncio.gather(*(c.post("/v2/events", content=b, headers={"X-Api-Key": P03})
                                          for b in bodies))

    codes = sorted(asyncio.run(burst()), key=lambda r: r.status_code)
    assert [r.status_code for r in codes] == [202, 202, 429]
    assert int(codes[2].headers["Retry-After"]) >= 1
    assert 0 < codes[2].json()["retry_after_s"] <= 1.0
    big = post(client, P03, [v2(f"big-{i}") for i in range(2500)])
    assert big.status_code == 413 and "split" in big.json()["detail"]


def test_dlq_listing_and_replay(client, broker):
    async def dead(txns):
        nc = await nats.connect(broker.url)
        js = nc.jetstream()
        await ensure_streams(js)
        for txn in txns:
            e = CanonicalEvent(txn_id=txn, correlation_id=f"c-{txn}", flow="scrap", plant="P02", item="RM-9",
                               qty=1, unit="EA", t_created=1.0)
            await dead_letter(js, e.model_dump_json().encode(), "P02", "scrap", txn, e.correlation_id,
                              "unmapped_item", "item RM-9 has no mapping")
        await nc.close()

    # stored through the gateway like every event, then dead-lettered as a worker does
    posted = [{**v2(t), "flow": "scrap", "item": "RM-9", "t_created": 1.0} for t in ("dq-1", "dq-2", "dq-3")]
    assert post(client, P02, posted).status_code == 202
    assert client.get("/v2/plants/P02/events/dq-2", headers={"X-Api-Key": P02}).json()["status"] == "stored"
    asyncio.run(dead(["dq-1", "dq-2", "dq-3"]))
    admin = {"X-Api-Key": ADMIN}
    listing = client.get("/admin/dlq", headers=admin).json()
    assert listing["count"] == 3
    assert [(m["txn_id"], m["reason"], m["plant"]) for m in listing["messages"]] == [
        ("dq-1", "unmapped_item", "P02"), ("dq-2", "unmapped_item", "P02"), ("dq-3", "unmapped_item", "P02")]
    assert client.get("/v2/plants/P02/events/dq-2", headers={"X-Api-Key": P02}).json()["status"] == "dead_lettered"
    r = client.post("/admin/replay", json={"txn_ids": ["dq-2", "dq-404"]}, headers=admin).json()
    assert r == {"replayed": 1, "txn_ids": ["dq-2"], "not_found": ["dq-404"]}
    replayed = [m for m in read_stream(broker.url, "events.P02.scrap.*")
                if m.headers.get("X-Replay-Of")]
    assert len(replayed) == 1 and CanonicalEvent.model_validate_json(replayed[0].data).txn_id == "dq-2"
    again = client.get("/v2/plants/P02/events/dq-2", headers={"X-Api-Key": P02}).json()
    assert again["status"] == "stored" and again["stream_seq"] == replayed[0].metadata.sequence.stream
    assert client.get("/admin/dlq", headers=admin).json()["count"] == 2
    # by scenario-time range: everything dead-lettered up to now
    r = client.post("/admin/replay", json={"t_to": 1e12}, headers=admin).json()
    assert sorted(r["txn_ids"]) == ["dq-1", "dq-3"]
    assert len(read_stream(broker.url, "dlq.>", DLQ_STREAM)) == 0
    bad = client.post("/admin/replay", json={}, headers=admin)
    assert bad.status_code == 422 and "txn_ids" in json.dumps(bad.json())


def test_oversized_body_is_413(client):
    huge = b"[" + b" " * (16 * 1024 * 1024 + 10) + b"]"
    r = client.post("/v2/events", content=huge, headers={"X-Api-Key": P01})
    assert r.status_code == 413 and "split" in r.json()["detail"]
