"""The ERP twin's quality-hold record: each hold or release applied once, a lot's status readable, refused in an
outage; the ERP deliverer routes a plant's quality messages to the ERP serving it at their decision time."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from kernel.clock import ScaledClock
from kernel.trace import QUALITY_HOLD, QUALITY_RELEASE
from live.downlink import DownlinkLog, ErpQualityDeliverer
from live.erp_service import create_erp_app
from scenarios.spec import ErpSpec


def _app(tmp_path: Path, kind: str = "legacy"):
    spec = ErpSpec(kind=kind, network_latency=0.0)
    return create_erp_app(kind, spec, tmp_path / f"erp-{kind}.sqlite", ScaledClock(time.time() - 100, 60.0))


def _msg(flow: str, lot: str, t: float) -> dict:
    return {"txn_id": f"{'QH' if flow == QUALITY_HOLD else 'QR'}-{lot}", "flow": flow, "lot": lot, "item": "FG-100",
            "line": "L1", "t_created": t}


def test_a_hold_is_applied_once_and_its_release_clears_it(tmp_path: Path):
    with TestClient(_app(tmp_path)) as erp:
        hold = erp.post("/quality", json={"plant": "P01", "messages": [_msg(QUALITY_HOLD, "LOT-1", 60.0)]})
        assert hold.status_code == 200
        (first,) = hold.json()["results"]
        assert first["status"] == "applied" and first["t_received"] > 0
        status = erp.get("/quality/lots/LOT-1").json()
        assert status["held"] is True and status["t_hold"] == 60.0 and status["plant"] == "P01"

        again = erp.post("/quality", json={"plant": "P01", "messages": [_msg(QUALITY_HOLD, "LOT-1", 60.0),
                                                                        _msg(QUALITY_RELEASE, "LOT-1", 300.0)]})
        dup, rel = again.json()["results"]
        assert dup == {**first, "status": "duplicate"}  # first arrival kept
        assert rel["status"] == "applied"
        status = erp.get("/quality/lots/LOT-1").json()
        assert status["held"] is False and status["t_release"] == 300.0
        assert status["t_hold_at_erp"] == first["t_received"]

        assert erp.get("/quality/lots/LOT-9").status_code == 404
        bad = erp.post("/quality", json={"plant": "P01", "messages": [{**_msg(QUALITY_HOLD, "L", 1.0), "flow": "x"}]})
        assert bad.status_code == 422 and "flow" in bad.text

        erp.post("/admin/mode", json={"mode": "outage"})
        down = erp.post("/quality", json={"plant": "P01", "messages": [_msg(QUALITY_HOLD, "LOT-2", 90.0)]})
        assert down.status_code == 503 and erp.get("/quality/lots/LOT-2").status_code == 404


def test_the_erp_deliverer_routes_each_message_to_the_erp_of_its_time(tmp_path: Path):
    legacy, cloud = _app(tmp_path, "legacy"), _app(tmp_path, "cloud")
    cutover = 1000.0
    route = lambda plant, t: "legacy" if t < cutover else "cloud"  # noqa: E731 - a rollout wave at 1000 s
    log = DownlinkLog(tmp_path / "downlink.sqlite")
    d = ErpQualityDeliverer("P01", {"legacy": "http://legacy", "cloud": "http://cloud"}, route,
                            ScaledClock(time.time(), 60.0), log, (1.0, 2.0, 10.0))
    bodies = [_msg(QUALITY_HOLD, "LOT-1", 900.0), _msg(QUALITY_RELEASE, "LOT-1", 1200.0)]

    async def send() -> tuple:
        mounts = {"http://legacy": httpx.ASGITransport(legacy), "http://cloud": httpx.ASGITransport(cloud)}
        async with httpx.AsyncClient(mounts=mounts) as http:
            return await d._send(http, bodies)

    status, answers = asyncio.run(send())
    assert status == 200 and {a["status"] for a in answers.values()} == {"applied"} and len(answers) == 2
    assert [d._ends(b["flow"], b) for b in bodies] == [("QMS", "ERP-legacy"), ("QMS", "ERP-cloud")]
    with TestClient(legacy) as a, TestClient(cloud) as b:
        assert a.get("/quality/lots/LOT-1").json()["held"] is True  # the legacy ERP saw the hold only
        assert b.get("/quality/lots/LOT-1").json()["t_release"] == 1200.0
    log.close()


def test_a_hold_arriving_after_its_release_does_not_hold_the_lot_again(tmp_path: Path):
    # A restarted deliverer's unacknowledged hold comes back after the ack wait, behind the lot's release.
    with TestClient(_app(tmp_path)) as erp:
        erp.post("/quality", json={"plant": "P01", "messages": [_msg(QUALITY_RELEASE, "LOT-2", 300.0)]})
        late = erp.post("/quality", json={"plant": "P01", "messages": [_msg(QUALITY_HOLD, "LOT-2", 60.0)]})
        assert late.json()["results"][0]["status"] == "applied"
        status = erp.get("/quality/lots/LOT-2").json()
        assert status["held"] is False and status["t_hold"] == 60.0 and status["t_release"] == 300.0
