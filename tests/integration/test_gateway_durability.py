"""202 means stored: crash the gateway right after a 202, lose the broker, and check what survives."""

from __future__ import annotations

import json

import httpx
import pytest

from integration.broker import EmbeddedNats
from tests.integration.gateway_support import read_stream, start_gateway
from tests.polling import poll

pytestmark = pytest.mark.slow

P01 = "key-p01"


def batch(prefix: str, n: int) -> str:
    return json.dumps([{"txn_id": f"{prefix}-{i}", "flow": "backflush", "item": "RM-10", "qty": 1.5,
                        "unit": "KG", "t_created": float(i)} for i in range(n)])


def test_events_acknowledged_with_202_survive_a_gateway_sigkill(broker, credentials_file):
    gw = start_gateway(broker, credentials_file)
    r = httpx.post(f"{gw.url}/v2/events", content=batch("kill", 1000), headers={"X-Api-Key": P01}, timeout=30)
    gw.kill()  # SIGKILL straight after the 202: no shutdown hook runs
    assert r.status_code == 202 and r.json()["accepted"] == 1000
    ids = {m.headers["Nats-Msg-Id"] for m in read_stream(broker.url, "events.P01.backflush.*")}
    assert {f"kill-{i}" for i in range(1000)} <= ids

    # a restarted gateway has an empty index yet still finds the transaction in the stream
    gw = start_gateway(broker, credentials_file)
    try:
        status = httpx.get(f"{gw.url}/v2/plants/P01/events/kill-999", headers={"X-Api-Key": P01}).json()
        assert status["status"] == "stored" and status["stream_seq"] > 0
        again = httpx.post(f"{gw.url}/v2/events", content=batch("kill", 1000), headers={"X-Api-Key": P01},
                           timeout=30)
        assert again.json()["duplicates"] == 1000  # the client's retry stores nothing twice
    finally:
        gw.stop()


def test_broker_outage_gives_503_then_recovers(tmp_path, credentials_file):
    server = EmbeddedNats(tmp_path / "nats", die_with_parent=True)
    server.start()
    gw = start_gateway(server, credentials_file, env={"SYNCTWIN_GATEWAY_PUBLISH_TIMEOUT": "2"})
    try:
        with httpx.Client(base_url=gw.url, headers={"X-Api-Key": P01}, timeout=30) as client:
            assert client.post("/v2/events", content=batch("up", 10)).status_code == 202
            server.kill()
            poll(lambda: client.get("/health").status_code == 503)
            down = client.post("/v2/events", content=batch("down", 10))
            assert down.status_code == 503 and down.headers["Retry-After"] == "1"
            server.start()  # same port and store: the gateway reconnects on its own
            poll(lambda: client.get("/health").status_code == 200, deadline_s=20)
            assert client.post("/v2/events", content=batch("down", 10)).status_code == 202
        ids = {m.headers["Nats-Msg-Id"] for m in read_stream(server.url)}
        assert {f"up-{i}" for i in range(10)} | {f"down-{i}" for i in range(10)} <= ids
    finally:
        code = gw.stop()
        server.stop()
    assert code == 0  # SIGTERM: clean exit
