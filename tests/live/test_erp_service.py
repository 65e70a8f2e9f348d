"""The ERP twin service as a real process: ledger durability, no de-duplication, faults, rate limit."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time

import httpx
import pytest

from live.procs import Service
from tests.live.erp_support import erp, posting, scenario

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("erp")
    proc = erp(scenario(tmp, mean="1.2s"), tmp / "state" / "erp-legacy.sqlite")  # 20 ms wall at speed 60
    with httpx.Client(base_url=proc.url, timeout=30) as client:
        yield client
    proc.stop()


def test_posting_twice_is_two_rows(service):
    first = service.post("/postings", json=posting("dup-1"), headers={"X-Correlation-Id": "c-1"})
    second = service.post("/postings", json=posting("dup-1"))
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.headers["X-Correlation-Id"] == "c-1"
    assert second.json()["posting_id"] == first.json()["posting_id"] + 1
    rows = [r for r in service.get("/ledger").json()["rows"] if r["txn_id"] == "dup-1"]
    assert len(rows) == 2 and {r["erp"] for r in rows} == {"legacy"}
    assert rows[0]["t_posted"] > 0


def test_bad_posting_names_the_field(service):
    r = service.post("/postings", json={**posting("bad"), "qty": "five"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "qty"
    r = service.post("/admin/mode", json={"mode": "broken"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "mode"


def test_outage_gives_503_and_posts_nothing(service):
    before = len(service.get("/ledger").json()["rows"])
    assert service.post("/admin/mode", json={"mode": "outage"}).json()["mode"] == "outage"
    r = service.post("/postings", json=posting("out-1"))
    assert r.status_code == 503 and "Retry-After" in r.headers
    assert len(service.get("/ledger").json()["rows"]) == before
    service.post("/admin/mode", json={"mode": "normal"})
    assert service.post("/postings", json=posting("out-1")).status_code == 201


def test_slow_mode_multiplies_service_time(service):
    def timed() -> float:
        start = time.perf_counter()
        assert service.post("/postings", json=posting("slow")).status_code == 201
        return time.perf_counter() - start

    normal = min(timed() for _ in range(3))
    service.post("/admin/mode", json={"mode": "slow", "factor": 10})
    slow = min(timed() for _ in range(3))
    service.post("/admin/mode", json={"mode": "normal"})
    assert normal >= 0.018  # 1.2 scenario s at speed 60
    assert slow >= 0.19 and slow > 5 * normal


def test_ledger_paging(service):
    for txn in ("page-1", "page-1", "page-2"):  # its own rows: the module's other tests may run elsewhere
        assert service.post("/postings", json=posting(txn)).status_code == 201
    rows = service.get("/ledger", params={"limit": 2}).json()
    assert len(rows["rows"]) == 2
    rest = service.get("/ledger", params={"after": rows["next_after"]}).json()["rows"]
    assert all(r["id"] > rows["next_after"] for r in rest)
    assert service.get("/ledger", params={"since": 1e12}).json()["rows"] == []
    only = service.get("/ledger", params={"txn_id": "page-1"}).json()["rows"]
    assert len(only) == 2 and {r["txn_id"] for r in only} == {"page-1"}


def test_rate_limit_gives_429_with_retry_after(tmp_path):
    # 0.1 postings per scenario second = one every 10 scenario s = every 1/6 wall s at speed 60
    proc = erp(scenario(tmp_path, mean="0s", rate="0.1/s"), tmp_path / "erp.sqlite")
    try:
        with httpx.Client(base_url=proc.url) as client:
            codes = [client.post("/postings", json=posting(f"rl-{i}")) for i in range(4)]
            assert codes[0].status_code == 201
            limited = [r for r in codes[1:] if r.status_code == 429]
            assert limited and int(limited[0].headers["Retry-After"]) >= 1
            assert 0 < limited[0].json()["retry_after_s"] <= 10
            assert float(limited[0].headers["X-Retry-After-Scenario"]) == pytest.approx(
                limited[0].json()["retry_after_s"], abs=1e-5)
    finally:
        proc.stop()


def test_ledger_survives_kill_and_restart(tmp_path):
    db = tmp_path / "state" / "erp-legacy.sqlite"
    proc = erp(scenario(tmp_path, mean="0s"), db)
    with httpx.Client(base_url=proc.url) as client:
        for i in range(20):
            assert client.post("/postings", json=posting(f"k-{i}", qty=i)).status_code == 201
    proc.kill()  # kill -9 straight after the last 201
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*), SUM(qty) FROM ledger").fetchone() == (20, sum(range(20)))
    proc = erp(scenario(tmp_path, mean="0s"), db)
    try:
        with httpx.Client(base_url=proc.url) as client:
            assert client.post("/postings", json=posting("k-after")).status_code == 201
            rows = client.get("/ledger").json()["rows"]
        assert [r["txn_id"] for r in rows] == [f"k-{i}" for i in range(20)] + ["k-after"]
    finally:
        assert proc.stop() == 0


def test_bad_scenario_exits_2_naming_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nlandscape: {plants: [{id: P01}], erp: {kind: mainframe}}\n")
    proc = Service("erp-legacy", [sys.executable, "-m", "synctwin.commands.live_services", "erp", "--scenario",
                                  str(bad), "--db", str(tmp_path / "e.sqlite")], tmp_path)
    with pytest.raises(RuntimeError, match="exited with code 2"):
        proc.start()
    assert "landscape.erp.kind" in (tmp_path / "erp-legacy.log").read_text()


def test_postings_are_served_one_at_a_time(service):
    async def burst() -> float:
        async with httpx.AsyncClient(base_url=str(service.base_url)) as client:
            start = time.perf_counter()
            replies = await asyncio.gather(*(client.post("/postings", json=posting(f"q-{i}")) for i in range(8)))
            assert {r.status_code for r in replies} == {201}
            return time.perf_counter() - start

    assert asyncio.run(burst()) >= 8 * 0.02 * 0.95  # 8 x 1.2 scenario s at speed 60, queued, not overlapped
