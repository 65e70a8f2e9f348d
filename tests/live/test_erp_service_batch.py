"""The ERP twin's batch route as a real process: all or nothing, no de-duplication, outage, rate limit
counted in postings, service time summed per posting, bulk ledger lookup."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from live.procs import Service
from tests.live.erp_support import erp, scenario
from tests.live.erp_support import posting as single_posting

pytestmark = pytest.mark.slow

def start_erp(tmp: Path, mean: str = "0s", rate: str = "", speed: float = 60.0) -> tuple[Service, Path]:
    db = tmp / "state" / f"erp-{mean}-{len(rate)}.sqlite"
    return erp(scenario(tmp, mean, rate), db, speed), db


def posting(txn: str, qty: float = 1.0) -> dict:
    return single_posting(txn, qty)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    proc, _ = start_erp(tmp_path_factory.mktemp("erp"), mean="1.2s")  # 20 ms wall a posting at speed 60
    with httpx.Client(base_url=proc.url, timeout=30) as client:
        yield client
    proc.stop()


def txn_rows(client: httpx.Client, txn: str) -> list[dict]:
    return client.get("/ledger", params={"txn_id": txn}).json()["rows"]


def test_duplicates_inside_a_batch_are_both_posted(service):
    r = service.post("/postings/batch", json=[posting("bd-1"), posting("bd-2"), posting("bd-1", qty=2)])
    assert r.status_code == 201
    body = r.json()
    assert body["posted"] == 3 and body["last_posting_id"] - body["first_posting_id"] == 2
    rows = txn_rows(service, "bd-1")
    assert [r["qty"] for r in rows] == [1.0, 2.0]  # no de-duplication, list order kept
    assert rows[0]["id"] == body["first_posting_id"] and rows[1]["id"] == body["last_posting_id"]
    assert len({r["t_posted"] for r in rows}) == 1  # one commit for the batch


def test_outage_refuses_the_whole_batch(service):
    assert service.post("/admin/mode", json={"mode": "outage"}).status_code == 200
    try:
        r = service.post("/postings/batch", json=[posting("bo-1"), posting("bo-2")])
        assert r.status_code == 503 and "Retry-After" in r.headers
        assert txn_rows(service, "bo-1") == [] and txn_rows(service, "bo-2") == []
    finally:
        service.post("/admin/mode", json={"mode": "normal"})
    assert service.post("/postings/batch", json=[posting("bo-1"), posting("bo-2")]).status_code == 201


def test_invalid_posting_refuses_the_batch_naming_its_index_and_field(service):
    r = service.post("/postings/batch", json=[posting("bi-1"), {**posting("bi-2"), "qty": "five"}])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", 1, "qty"]
    assert txn_rows(service, "bi-1") == []  # all or nothing
    assert service.post("/postings/batch", json=[]).status_code == 422


def test_batch_service_time_is_the_sum_of_its_postings(service):
    start = time.perf_counter()
    assert service.post("/postings/batch", json=[posting(f"bs-{i}") for i in range(10)]).status_code == 201
    assert time.perf_counter() - start >= 10 * 0.02 * 0.95  # 10 x 1.2 scenario s at speed 60
    service.post("/admin/mode", json={"mode": "slow", "factor": 3})
    try:
        start = time.perf_counter()
        assert service.post("/postings/batch", json=[posting(f"bss-{i}") for i in range(5)]).status_code == 201
        assert time.perf_counter() - start >= 5 * 0.06 * 0.95
    finally:
        service.post("/admin/mode", json={"mode": "normal"})


def test_ledger_lookup_names_the_transactions_held(service):
    service.post("/postings/batch", json=[posting("lk-1"), posting("lk-1")])
    r = service.post("/ledger/lookup", json={"txn_ids": ["lk-1", "lk-none"]})
    assert r.status_code == 200 and r.json()["found"] == ["lk-1"]
    assert service.post("/ledger/lookup", json={"txn_ids": []}).status_code == 422


def test_rate_limit_counts_postings_not_requests(tmp_path):
    # 3 postings per scenario second, a burst of 3: one batch of 3 passes, the next batch waits. At speed 1
    # the bucket refills in wall seconds (at speed 60 two tokens came back within 11 ms, a race on a busy host).
    proc, db = start_erp(tmp_path, rate="3/s", speed=1.0)
    try:
        with httpx.Client(base_url=proc.url) as client:
            assert client.post("/postings/batch", json=[posting(f"rl-{i}") for i in range(3)]).status_code == 201
            limited = client.post("/postings/batch", json=[posting("rl-3"), posting("rl-4")])
            assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
            wait = float(limited.headers["X-Retry-After-Scenario"])
            assert 0 < wait <= 2 / 3 + 1e-6  # two postings' worth of tokens at 3/s
            too_big = client.post("/postings/batch", json=[posting(f"rb-{i}") for i in range(4)])
            assert too_big.status_code == 413 and "at most 3" in too_big.json()["detail"]
    finally:
        proc.stop()
    with sqlite3.connect(db) as conn:
        assert [r[0] for r in conn.execute("SELECT txn_id FROM ledger ORDER BY id")] == ["rl-0", "rl-1", "rl-2"]


def test_batch_survives_kill_after_its_201(tmp_path):
    proc, db = start_erp(tmp_path)
    with httpx.Client(base_url=proc.url) as client:
        assert client.post("/postings/batch", json=[posting(f"k-{i}", qty=i) for i in range(200)]).status_code == 201
    proc.kill()  # kill -9 straight after the 201
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*), SUM(qty) FROM ledger").fetchone() == (200, sum(range(200)))


def test_batch_route_documents_its_body_and_names_bad_json(service):
    spec = service.get("/openapi.json").json()["paths"]["/postings/batch"]["post"]["requestBody"]
    schema = spec["content"]["application/json"]["schema"]
    assert schema["items"] == {"$ref": "#/components/schemas/Posting"} and schema["minItems"] == 1
    r = service.post("/postings/batch", content=b"[{", headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
