"""The downlink's trace rows: one delivery of a quality message to the plant is a WMS row and its MES twin."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

from kernel.trace import DEAD_LETTERED, DELIVERED, IN_FLIGHT, QUALITY_HOLD, QUALITY_RELEASE
from live.collect_downlink import downlink_trace_rows
from live.downlink import DownlinkLog
from live.qms_service import _SCHEMA as QMS_SCHEMA

NAN = float("nan")


def _delivery(txn: str, flow: str, lot: str, target: str, outcome: str, t: float, attempts: int = 1) -> tuple:
    at = t + 30.0 if outcome == DELIVERED else NAN
    return (txn, flow, "P01", "Line01", lot, "FG-100", "QMS", target, t, t + 1.0, at, at if outcome == DELIVERED
            else t + 60.0, attempts, outcome, "" if outcome == DELIVERED else "breaker")


def test_a_delivered_quality_message_has_an_mes_twin_and_an_unapplied_one_is_in_flight_at_both(tmp_path: Path):
    log = DownlinkLog(tmp_path / "downlink.sqlite")
    log.record([_delivery("QH-L1", QUALITY_HOLD, "L1", "WMS", DELIVERED, 100.0, attempts=3),
                _delivery("QH-L1", QUALITY_HOLD, "L1", "ERP-legacy", DELIVERED, 100.0),
                _delivery("QH-L2", QUALITY_HOLD, "L2", "WMS", DEAD_LETTERED, 200.0)])
    log.close()
    with sqlite3.connect(tmp_path / "qms.sqlite") as db:
        db.executescript(QMS_SCHEMA)
        db.executemany("INSERT INTO qms_lots VALUES (?,?,?,?,?,?,?,?,?,?,?)", [
            ("L1", "P01", "Line01", "FG-100", 50.0, 1, 1, 100.0, 400.0, 101.0, 401.0),  # release not applied yet
            ("L2", "P01", "Line01", "FG-100", 60.0, 1, 1, 200.0, None, 201.0, None)])
    rows = downlink_trace_rows(tmp_path, "run")
    by = {(r["txn_id"], r["target"], r["outcome"]): r for r in rows}
    wms, mes = by[("QH-L1", "WMS", DELIVERED)], by[("QH-L1", "MES", DELIVERED)]
    assert mes["source"] == "QMS" and mes["flow"] == QUALITY_HOLD and mes["lot"] == "L1"
    assert all(mes[c] == wms[c] for c in ("t_created", "t_broker", "t_delivered", "t_acked"))
    assert wms["attempts"] == 3 and mes["attempts"] == 1  # the delivery's retries counted once
    # A dead-lettered delivery stays one row; the release nobody applied yet is in flight at the WMS and the MES.
    assert [k for k in by if k[0] == "QH-L2"] == [("QH-L2", "WMS", DEAD_LETTERED)]
    pending = sorted(k[1] for k in by if k[0] == "QR-L1")
    assert pending == ["MES", "WMS"] and all(by[("QR-L1", t, IN_FLIGHT)]["t_created"] == 400.0 for t in pending)
    assert by[("QR-L1", "MES", IN_FLIGHT)]["flow"] == QUALITY_RELEASE
    assert math.isnan(by[("QR-L1", "MES", IN_FLIGHT)]["t_delivered"])
    assert len(rows) == 6
