"""The ERP twin refuses numbers a ledger must never hold: NaN, ±Infinity, 1e400 and booleans (real process)."""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest

from tests.live.erp_support import erp, posting, scenario

pytestmark = pytest.mark.slow

BAD_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "true", '"5"']


@pytest.fixture(scope="module")
def ledger_service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("erp-validation")
    db = tmp / "state" / "erp-legacy.sqlite"
    proc = erp(scenario(tmp, mean="0s"), db)
    with httpx.Client(base_url=proc.url, timeout=30) as client:
        yield client, db
    proc.stop()


def with_raw(body: dict, field: str, raw: str) -> bytes:
    """``body`` as JSON with ``field`` set to the literal ``raw`` (which ``json.dumps`` would not write)."""
    return json.dumps({**body, field: "@@"}).replace('"@@"', raw).encode()


@pytest.mark.parametrize("field", ["qty", "t_created"])
def test_non_finite_and_non_numbers_are_422_naming_the_field_on_both_routes(ledger_service, field):
    client, db = ledger_service
    for raw in BAD_NUMBERS:
        one = with_raw(posting(f"bad-{field}"), field, raw)
        for path, body in (("/postings", one), ("/postings/batch", b"[" + one + b"]")):
            r = client.post(path, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 422, (path, raw, r.text)
            detail = r.json()["detail"]  # valid JSON: a NaN sent in is not echoed as a number
            assert any(e["loc"][-1] == field for e in detail), (path, raw, detail)
    ok = client.post("/postings", json=posting(f"fine-{field}", qty=2))
    assert ok.status_code == 201
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT txn_id, qty FROM ledger").fetchall()
    assert (f"fine-{field}", 2.0) in rows and all(txn.startswith("fine-") for txn, _ in rows)


def test_admin_mode_numbers_must_be_finite(ledger_service):
    client, _ = ledger_service
    r = client.post("/admin/mode", content=b'{"mode": "slow", "factor": Infinity}',
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "factor"
