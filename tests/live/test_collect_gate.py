"""A live goods receipt of a lot under inspection is complete at its quality disposition, as in the virtual engine."""

from __future__ import annotations

import math
from pathlib import Path

from kernel.trace import DELIVERED, GOODS_RECEIPT, OPERATION_CONFIRMATION
from live.collect_downlink import gate_receipts
from live.qms_service import QmsStore


def test_goods_receipts_wait_for_the_disposition_of_their_lot(tmp_path: Path):
    store = QmsStore(tmp_path / "qms.sqlite")
    # (lot, plant, line, item, t_known, inspect, held, t_hold, t_release)
    store.decide([("LOT-A", "P01", "L1", "FG", 100.0, True, True, 160.0, 900.0),  # held, released at 900
                  ("LOT-B", "P01", "L1", "FG", 100.0, True, False, None, 130.0),  # inspected, passed at 130
                  ("LOT-C", "P01", "L1", "RM", 100.0, False, False, None, None),  # no inspection
                  ("LOT-D", "P01", "L1", "FG", 100.0, True, True, 150.0, 5000.0)])  # released after the run
    store.close()
    outbox = [{"txn_id": f"GR-{x}", "flow": GOODS_RECEIPT, "lot": f"LOT-{x}", "item": "RM" if x == "C" else "FG"}
              for x in "ABCDE"] + [{"txn_id": "OC-1", "flow": OPERATION_CONFIRMATION, "lot": "LOT-A", "item": "FG"}]
    deliveries = [{"txn_id": r["txn_id"], "outcome": DELIVERED, "t_delivered": 120.0, "t_acked": 121.0}
                  for r in outbox]
    out = gate_receipts(outbox, deliveries, tmp_path, {"FG": True, "RM": False}, duration=3600.0)
    acked = {d["txn_id"]: d["t_acked"] for d in out}
    assert acked["GR-A"] == 900.0 and acked["GR-B"] == 130.0  # the later of acceptance and disposition
    assert acked["GR-C"] == 121.0 and acked["OC-1"] == 121.0  # nothing to wait for
    assert acked["GR-D"] is None  # disposed after the run's end: not complete in this run
    assert acked["GR-E"] is None  # needs inspection, the QMS has not decided yet
    assert all(d["t_delivered"] == 120.0 for d in out) and not math.isnan(deliveries[0]["t_acked"])
