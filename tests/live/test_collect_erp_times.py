"""ERP arrival and service start: the ERP twin's ledger records them, the collector puts them in the trace."""

from __future__ import annotations

import math

from live.collect import build_trace, read_erp_times
from live.erp_service import Ledger, Posting


def _posting(txn: str) -> Posting:
    return Posting(txn_id=txn, flow="material_issue", plant="P01", item="RM-10", qty=1.0, unit="KG", t_created=1.0)


def test_delivered_postings_carry_the_erp_queueing_times(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    ledger = Ledger(state / "erp-legacy.sqlite")
    ledger.post(_posting("P01-MI-000001"), "legacy", 12.0, t_arrival=10.0, t_service_start=11.5)
    ledger.post_many([_posting("P01-MI-000002"), _posting("P01-MI-000003")], "legacy", 20.0, 18.0, 19.0)
    ledger.close()
    times = read_erp_times(state)
    assert times["P01-MI-000001"] == (10.0, 11.5) and times["P01-MI-000003"] == (18.0, 19.0)
    deliveries = [
        {"txn_id": "P01-MI-000001", "outcome": "delivered", "target": "legacy", "t_broker": 9.0, "t_delivered": 12.1,
         "t_acked": 12.1, "attempts": 1},
        {"txn_id": "P01-MI-000002", "outcome": "duplicate_suppressed", "target": "legacy", "t_broker": 17.0,
         "t_delivered": None, "t_acked": 21.0, "attempts": 1},
    ]
    trace = build_trace([], deliveries, "run", times).to_pylist()
    assert (trace[0]["t_erp_arrival"], trace[0]["t_service_start"]) == (10.0, 11.5)
    assert math.isnan(trace[1]["t_erp_arrival"])  # nothing delivered: no ERP queueing of its own
