"""The downlink's part of a live run folder: quality-message trace rows and the lots' quality and shipping.

Inputs under ``RUN_DIR/state/``: ``downlink.sqlite`` (one row per delivered copy, :mod:`live.downlink`),
``orders.sqlite`` (the ERP's released orders, :mod:`live.order_release`), ``master_data.sqlite`` (versions
published, :mod:`live.master_data`),
``qms.sqlite`` (the QMS's decisions and when each message was published, :mod:`live.qms_service`) and the
``wms_lots`` table of each edge's ``edge-<plant>.sqlite`` (:mod:`live.plant_wms`). A message the QMS
published that no plant applied yet becomes an ``in_flight`` row, so nothing it decided goes missing; so does
its copy to the ERP (:mod:`live.erp_quality`, target ``ERP-<kind>`` once delivered, ``ERP`` while in flight).
The plant applies a quality message to its WMS and its MES in one transaction (:mod:`live.plant_mes`), so
each delivered WMS row has an MES twin with the same times (and one attempt: the delivery's retries are
counted once, on the WMS row); a duplicate or dead-lettered copy stays one row (target WMS), so the report
counts it once.

Lots (``kernel.trace.LOTS_SCHEMA``), column by column as the virtual engine fills them: ``held``,
``t_hold``, ``t_release`` (the QMS's decisions), ``t_hold_at_wms`` / ``t_release_at_wms`` (when the
plant's WMS applied the message), ``t_shipped`` and ``shipped_while_held`` = held and shipped before the
lot's release, the invariant the report checks (``reports/invariants.py``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from integration.sqlite import read_rows as _rows
from kernel.trace import DELIVERED, GOODS_RECEIPT, IN_FLIGHT, MASTER_DATA, ORDER_RELEASE, QUALITY_HOLD, QUALITY_RELEASE
from live.plant_mes import ACK_PREFIX

NAN = float("nan")
REASON_NOT_YET_APPLIED = "not_yet_applied_at_plant"
REASON_NOT_YET_AT_ERP = "not_yet_applied_at_erp"
_QUALITY = (QUALITY_HOLD, QUALITY_RELEASE)


def _to_erp(txn: str) -> str:
    """The key of a quality message's ERP copy among the delivered ones (it shares the ``txn_id``)."""
    return f"{txn}@ERP"


def _num(value: Any) -> float:
    return NAN if value is None else float(value)


def read_decisions(state: Path) -> dict[str, dict[str, Any]]:
    """The QMS's decision per lot."""
    return {r["lot"]: r for r in _rows(state / "qms.sqlite", "SELECT * FROM qms_lots")}


def read_wms_lots(state: Path) -> dict[str, dict[str, Any]]:
    """Every plant WMS's lot rows, by lot."""
    return {r["lot"]: r for p in sorted(state.glob("edge-*.sqlite")) for r in _rows(p, "SELECT * FROM wms_lots")}


def split_acks(outbox: list[dict[str, Any]], deliveries: list[dict[str, Any]]) -> tuple[list, list, dict[str, float]]:
    """Take the MES's order acks (``ACK-<order>`` events, :mod:`live.plant_mes`) out of the uplink rows: they
    are the end of their order's flow, not flows of their own. Returns (outbox, deliveries) without them and,
    per order ``txn_id``, when its ack was handed off at the enterprise (the first delivered copy)."""
    acks: dict[str, float] = {}
    for d in deliveries:
        if d["txn_id"].startswith(ACK_PREFIX) and d["outcome"] == DELIVERED and d.get("t_delivered") is not None:
            order = d["txn_id"].removeprefix(ACK_PREFIX)
            acks[order] = min(acks.get(order, math.inf), float(d["t_delivered"]))
    keep = lambda r: not r["txn_id"].startswith(ACK_PREFIX)  # noqa: E731
    return [r for r in outbox if keep(r)], [d for d in deliveries if keep(d)], acks


def gate_receipts(outbox: list[dict[str, Any]], deliveries: list[dict[str, Any]], state: Path,
                  inspected: dict[str, bool], duration: float = math.inf) -> list[dict[str, Any]]:
    """Deliveries with each goods receipt of a lot under inspection complete at its quality disposition too,
    as the virtual engine completes it (``t_acked`` = the later of the ERP's acceptance and the QMS's decision
    ``t_release``, ``kernel/trace.py``): a disposition after the run's ``duration``, or none yet for a lot
    that needs inspection (``inspected``: plant item -> needs it), leaves ``t_acked`` NaN (not complete)."""
    decisions = read_decisions(state)
    receipts = {r["txn_id"]: r for r in outbox if r.get("flow") == GOODS_RECEIPT}
    out = []
    for d in deliveries:
        src = receipts.get(d["txn_id"])
        if src is None or d["outcome"] != DELIVERED or math.isnan(_num(d.get("t_acked"))):
            out.append(d)
            continue
        q = decisions.get(src.get("lot") or src["txn_id"])
        needs = bool(q["requires_inspection"]) if q else inspected.get(src.get("item") or "", False)
        if not needs:
            out.append(d)
            continue
        t_gate = _num(q["t_release"]) if q else NAN
        t_acked = max(float(d["t_acked"]), t_gate) if t_gate <= duration else NAN
        out.append({**d, "t_acked": None if math.isnan(t_acked) else t_acked})
    return out


def downlink_trace_rows(state: Path, run_id: str, acks: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """Trace rows of the enterprise-to-plant messages: one per delivered copy (an order's ``t_acked`` from
    ``acks``, :func:`split_acks`), one per published but unapplied message."""
    rows, seen, acks = [], set(), acks or {}
    for d in _rows(state / "downlink.sqlite", "SELECT * FROM deliveries ORDER BY rowid"):
        seen.add(_to_erp(d["txn_id"]) if (d["target"] or "").startswith("ERP") else d["txn_id"])
        t_acked = _num(d["t_acked"])
        if d["flow"] == ORDER_RELEASE and d["outcome"] == DELIVERED:
            t_acked = acks.get(d["txn_id"], NAN)
        rows.append({**_base(run_id, d["txn_id"], d["flow"], d["plant"], d["line"], d["lot"], d["item"]),
                     "source": d["source"], "target": d["target"], "qty": _version(d["flow"], d["lot"]),
                     "t_created": _num(d["t_created"]), "t_broker": _num(d["t_broker"]),
                     "t_delivered": _num(d["t_delivered"]), "t_acked": t_acked,
                     "attempts": int(d["attempts"] or 0), "outcome": d["outcome"], "reason": d["reason"] or ""})
        if d["target"] == "WMS" and d["flow"] in _QUALITY and d["outcome"] == DELIVERED:
            # The same delivery applied it at the plant's MES; its retries are counted once, on the WMS row.
            rows.append({**rows[-1], "target": "MES", "attempts": 1})
    for o in _rows(state / "orders.sqlite", "SELECT * FROM orders WHERE t_released IS NOT NULL"):
        if o["txn_id"] not in seen:
            rows.append({**_base(run_id, o["txn_id"], ORDER_RELEASE, o["plant"], o["line"], o["txn_id"], o["item"]),
                         "source": "ERP", "target": "MES", "t_created": _num(o["t_released"]), "t_broker": NAN,
                         "t_delivered": NAN, "t_acked": NAN, "attempts": 0, "outcome": IN_FLIGHT,
                         "reason": REASON_NOT_YET_APPLIED})
    for v in _rows(state / "master_data.sqlite", "SELECT * FROM versions WHERE t_released IS NOT NULL"):
        if v["txn_id"] not in seen:
            rows.append({**_base(run_id, v["txn_id"], MASTER_DATA, v["plant"], "", f"v{v['version']}", ""),
                         "source": "ERP", "target": "MES", "qty": float(v["version"]),
                         "t_created": _num(v["t_released"]), "t_broker": NAN, "t_delivered": NAN, "t_acked": NAN,
                         "attempts": 0, "outcome": IN_FLIGHT, "reason": REASON_NOT_YET_APPLIED})
    # The ERP's copies of quality messages exist when the run's ERP twins took them (live/erp_quality.py).
    targets = [("WMS", ""), ("MES", "")]
    if any(state.glob("erp-*-quality.sqlite")):
        targets.append(("ERP", REASON_NOT_YET_AT_ERP))
    for lot, q in read_decisions(state).items():
        for flow, sent, when, txn in ((QUALITY_HOLD, "hold_sent", "t_hold", f"QH-{lot}"),
                                      (QUALITY_RELEASE, "release_sent", "t_release", f"QR-{lot}")):
            for target, reason in targets:
                if q[sent] is None or (_to_erp(txn) if target == "ERP" else txn) in seen:
                    continue
                rows.append({**_base(run_id, txn, flow, q["plant"], q["line"], lot, q["item"]), "target": target,
                             "t_created": _num(q[when]), "t_broker": NAN, "t_delivered": NAN, "t_acked": NAN,
                             "attempts": 0, "outcome": IN_FLIGHT, "reason": reason or REASON_NOT_YET_APPLIED})
    return rows


def _version(flow: str, lot: str) -> float:
    """A master-data row carries its version in ``qty`` (its ``lot`` is ``v<k>``); others have none."""
    return float(lot[1:]) if flow == MASTER_DATA and lot.startswith("v") else NAN


def _base(run_id: str, txn: str, flow: str, plant: str, line: str, lot: str, item: str) -> dict[str, Any]:
    return {"run_id": run_id, "replication": 0, "txn_id": txn, "correlation_id": lot, "flow": flow, "plant": plant,
            "line": line or "", "source": "QMS", "target": "WMS", "item": item or "", "lot": lot, "qty": NAN,
            "unit": "", "schema_version": "", "t_edge": NAN}


def lot_rows(outbox: list[dict[str, Any]], state: Path, inspected: dict[str, bool], run_id: str,
             duration: float = math.inf) -> list[dict]:
    """One lots row per goods receipt at an edge (``inspected``: plant item -> needs inspection, for lots
    the QMS has not decided on). A hold the QMS dated after the run's ``duration`` had not happened when the
    run ended: that lot is reported as still under inspection (not held), like an undecided one."""
    decisions, wms = read_decisions(state), read_wms_lots(state)
    out = []
    for r in outbox:
        if r.get("flow") != GOODS_RECEIPT:
            continue
        lot = r.get("lot") or r["txn_id"]
        q, w = decisions.get(lot, {}), wms.get(lot, {})
        held = bool(q.get("held")) and _num(q.get("t_hold")) <= duration
        t_release = _num(q.get("t_release"))
        t_shipped = _num(w.get("t_shipped"))
        out.append({
            "run_id": run_id, "replication": 0, "lot": lot, "plant": r.get("plant"), "item": r.get("item"),
            "requires_inspection": bool(q["requires_inspection"]) if q else inspected.get(r.get("item") or "", False),
            "held": held, "t_completed": _num(r.get("t_created")),
            "t_hold": _num(q.get("t_hold")) if held else NAN, "t_hold_at_wms": _num(w.get("t_hold_at_wms")),
            "t_release": t_release, "t_release_at_wms": _num(w.get("t_release_at_wms")), "t_shipped": t_shipped,
            # the virtual engine's rule (virtual/plant.py): a held lot shipped before its release
            "shipped_while_held": held and t_shipped < t_release,
        })
    return out
