"""Numbers at the gateway (real uvicorn process, real broker): every numeric field finite, a JSON number, in range;
nothing refused reaches the stream; the OpenAPI document states what is refused."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.gateway_support import read_stream

pytestmark = pytest.mark.slow

KEY = "key-p01"
V2 = {"txn_id": "n-1", "flow": "scrap", "item": "RM-1", "qty": 3, "unit": "EA", "t_created": 7.5}
V1 = {"id": "n-1", "type": "scrap", "material": "RM-1", "quantity": 3, "uom": "EA", "timestamp": 7.5}
BAD = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 400, "true", "false", '"5"', "-1", "null"]


@pytest.fixture(scope="module")
def client(gateway):
    with httpx.Client(base_url=gateway.url, timeout=30) as c:
        yield c


def raw_body(event: dict, field: str, raw: str, batch: bool) -> bytes:
    """``event`` with ``field`` set to the JSON literal ``raw`` (alone, or second in a list of two)."""
    one = json.dumps({**event, field: "@@"}).replace('"@@"', raw)
    return f"[{json.dumps(event)}, {one}]".encode() if batch else one.encode()


@pytest.mark.parametrize(("path", "event", "fields"), [
    ("/v2/events", V2, ("qty", "t_created")),
    ("/v2/plants/P01/events", V2, ("qty", "t_created")),
    ("/v1/events", V1, ("quantity", "timestamp")),
])
def test_every_bad_number_is_422_naming_the_field_and_nothing_is_stored(client, broker, path, event, fields):
    for field in fields:
        for raw in BAD:
            for batch in (False, True):
                r = client.post(path, content=raw_body(event, field, raw, batch), headers={"X-Api-Key": KEY})
                assert r.status_code == 422, (path, field, raw, r.text)
                where = f"body[1].{field}" if batch else f"body.{field}"
                problems = r.json()["detail"]  # parses: a NaN or Infinity sent in comes back as text
                assert [p["field"] for p in problems] == [where], (raw, problems)
    assert not [m for m in read_stream(broker.url, "events.P01.>") if m.headers["Nats-Msg-Id"] == "n-1"]


def test_the_messages_say_how_to_fix_it(client):
    r = client.post("/v2/events", content=raw_body(V2, "qty", "NaN", False), headers={"X-Api-Key": KEY})
    assert r.json()["detail"] == [{"field": "body.qty", "found": "NaN",
                                   "message": "must be a finite JSON number; NaN, Infinity and numbers beyond "
                                              "±1.7e308 are refused"}]
    r = client.post("/v2/events", content=raw_body(V2, "t_created", "false", False), headers={"X-Api-Key": KEY})
    assert r.json()["detail"][0]["message"] == "must be a JSON number, not a string or a boolean"


def test_the_largest_finite_numbers_are_accepted(client):
    big = {**V2, "txn_id": "n-big", "qty": 1.7e308, "t_created": 0}
    assert client.post("/v2/events", json=big, headers={"X-Api-Key": KEY}).status_code == 202


def test_an_empty_list_is_refused_as_the_document_says(client):
    r = client.post("/v2/events", content=b"[]", headers={"X-Api-Key": KEY})
    assert r.status_code == 422
    assert r.json()["detail"] == [{"field": "body", "message": "empty list; send at least one event"}]
    doc = client.get("/openapi.json").json()
    for path in ("/v1/events", "/v2/events", "/v2/plants/{named}/events"):
        body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        lists = [branch for branch in body["anyOf"] if branch.get("type") == "array"]
        assert lists and lists[0]["minItems"] == 1 and lists[0]["maxItems"] == 5000


def test_admin_replay_numbers_must_be_finite(client):
    r = client.post("/admin/replay", content=b'{"t_from": NaN}',
                    headers={"X-Api-Key": "admin-key", "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "t_from"
