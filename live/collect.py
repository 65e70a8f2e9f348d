"""Build a live run's folder from the services' durable state, in the virtual engine's layout.

Inputs (all under ``RUN_DIR/state/``): the edges' outboxes ``edge-<plant>.sqlite`` (every source
record and how far it got at the edge), the workers' ``deliveries.sqlite`` (one row per message
copy: delivered, suppressed, dead-lettered) and the ERP ledgers ``erp-<kind>.sqlite``. Outputs:
``trace.parquet``, ``ledger.parquet``, ``lots.parquet`` (schemas of :mod:`kernel.trace`) and
``run.json`` (:class:`kernel.run_record.RunRecord` with ``engine: "live"``), written by the writer both
engines use (:func:`kernel.run_folder.write_run_folder`).

A source record with no delivery row is not silently dropped: it becomes an ``in_flight`` trace row
(pending at the edge, or accepted by the gateway but not yet delivered) or a ``rejected`` one with
the edge's reason, so the invariants can list it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pyarrow as pa

from integration.sqlite import read_rows as _rows
from kernel.run_folder import write_run_folder
from kernel.run_record import RunRecord, run_record
from kernel.trace import (
    ERP_QUEUE_TIMES,
    IN_FLIGHT,
    LEDGER_SCHEMA,
    LOTS_SCHEMA,
    REJECTED,
    TRACE_SCHEMA,
)
from live.collect_downlink import downlink_trace_rows, gate_receipts, lot_rows, split_acks
from scenarios.spec import Scenario

NAN = float("nan")
REASON_PENDING_AT_EDGE = "pending_at_edge"
REASON_NOT_YET_DELIVERED = "not_yet_delivered"


def _num(value: Any) -> float:
    return NAN if value is None else float(value)


def read_outboxes(state: Path) -> list[dict[str, Any]]:
    """Every edge outbox row of the run."""
    return [r for p in sorted(state.glob("edge-*.sqlite")) for r in _rows(p, "SELECT * FROM outbox")]


def pending_at_edges(state: Path) -> int:
    """Events still waiting in the edge outboxes (a cheap count, polled while the stack runs)."""
    sql = "SELECT count(*) AS n FROM outbox WHERE status = 'pending'"
    return sum(int(r["n"]) for p in sorted(state.glob("edge-*.sqlite")) for r in _rows(p, sql))


def edges_lagging(state: Path, end: float) -> list[str]:
    """The plants whose edge has not yet stored everything made before the production ``end``
    (:meth:`live.edge_store.EdgeStore.mark_drawn_through`); polled by the drain beside the outbox count."""
    sql = "SELECT drawn_through FROM production WHERE id = 1"
    lagging = []
    for p in sorted(state.glob("edge-*.sqlite")):
        marks = [r["drawn_through"] for r in _rows(p, sql)]
        if not marks or marks[0] is None or float(marks[0]) < end:
            lagging.append(p.stem.removeprefix("edge-"))
    return lagging


def read_deliveries(state: Path) -> list[dict[str, Any]]:
    """Every worker delivery row, in the order they were written."""
    return _rows(state / "deliveries.sqlite", "SELECT * FROM deliveries ORDER BY rowid")


def read_breaker(state: Path) -> list[dict[str, Any]]:
    """The workers' circuit-breaker transitions (``run.json``'s ``breaker``, as the virtual engine writes it)."""
    sql = "SELECT t, target, state, worker FROM breaker ORDER BY t, rowid"
    return [{"replication": 0, **r} for r in _rows(state / "deliveries.sqlite", sql)]


def read_ledgers(state: Path) -> list[dict[str, Any]]:
    """Every ERP ledger row (all ERP kinds)."""
    sql = "SELECT txn_id, flow, plant, item, qty, unit, erp, t_posted FROM ledger ORDER BY t_posted"
    return [r for p in sorted(state.glob("erp-*.sqlite")) for r in _rows(p, sql)]


def read_erp_times(state: Path) -> dict[str, tuple[float, float]]:
    """Per transaction, when its posting reached the ERP and when the ERP began serving it (the ledger's
    first row of it; an older ledger without these columns gives none)."""
    sql = "SELECT txn_id, t_arrival, t_service_start FROM ledger ORDER BY id DESC"
    return {r["txn_id"]: (_num(r["t_arrival"]), _num(r["t_service_start"]))
            for p in sorted(state.glob("erp-*.sqlite")) for r in _rows(p, sql)}


def build_trace(outbox: list[dict[str, Any]], deliveries: list[dict[str, Any]], run_id: str,
                erp_times: dict[str, tuple[float, float]] | None = None,
                downlink: list[dict[str, Any]] | None = None) -> pa.Table:
    """One trace row per delivery copy, plus one per source record that never reached a worker;
    ``erp_times`` (:func:`read_erp_times`) fills the ERP arrival and service start of delivered postings;
    ``downlink`` adds the enterprise-to-plant rows (:func:`live.collect_downlink.downlink_trace_rows`)."""
    source = {r["txn_id"]: r for r in outbox}
    erp_times = erp_times or {}
    cols: dict[str, list[Any]] = {f.name: [] for f in TRACE_SCHEMA}

    def add(row: dict[str, Any]) -> None:
        for name in cols:
            cols[name].append(row.get(name, NAN if name in ERP_QUEUE_TIMES else None))

    seen: set[str] = set()
    for d in deliveries:
        src = source.get(d["txn_id"], {})
        seen.add(d["txn_id"])
        kind = d.get("target") or ""
        queued = erp_times.get(d["txn_id"], (NAN, NAN)) if d["outcome"] == "delivered" else (NAN, NAN)
        add({
            "run_id": run_id, "replication": 0, "txn_id": d["txn_id"],
            "correlation_id": d.get("correlation_id") or src.get("correlation_id") or "",
            "flow": d.get("flow") or src.get("flow") or "", "plant": d.get("plant") or src.get("plant") or "",
            "line": d.get("line") or src.get("line") or "", "source": src.get("source") or "MES",
            "target": f"ERP-{kind}" if kind in ("legacy", "cloud") else (kind or "ERP"),
            "item": d.get("item") or src.get("item") or "",
            "lot": d.get("lot") or src.get("lot") or "", "qty": _num(d.get("qty", src.get("qty"))),
            "unit": d.get("unit") or src.get("unit") or "",
            "schema_version": d.get("schema_version") or src.get("schema_version") or "",
            "t_created": _num(src.get("t_created", d.get("t_created"))), "t_edge": _num(src.get("t_edge")),
            "t_broker": _num(d.get("t_broker")), "t_delivered": _num(d.get("t_delivered")),
            "t_acked": _num(d.get("t_acked")), "attempts": int(d.get("attempts") or 0),
            "outcome": d["outcome"], "reason": d.get("reason") or "",
            "t_erp_arrival": queued[0], "t_service_start": queued[1],
        })
    for src in outbox:
        if src["txn_id"] in seen:
            continue
        status = src.get("status")
        if status == "rejected":
            outcome, reason = REJECTED, src.get("reason") or "rejected_at_edge"
        else:
            outcome = IN_FLIGHT
            reason = REASON_PENDING_AT_EDGE if status == "pending" else REASON_NOT_YET_DELIVERED
        add({
            "run_id": run_id, "replication": 0, "txn_id": src["txn_id"],
            "correlation_id": src.get("correlation_id") or "", "flow": src.get("flow") or "",
            "plant": src.get("plant") or "", "line": src.get("line") or "",
            "source": src.get("source") or "MES",
            "target": src.get("target") or "ERP", "item": src.get("item") or "", "lot": src.get("lot") or "",
            "qty": _num(src.get("qty")), "unit": src.get("unit") or "",
            "schema_version": src.get("schema_version") or "", "t_created": _num(src.get("t_created")),
            "t_edge": _num(src.get("t_edge")), "t_broker": NAN, "t_delivered": NAN, "t_acked": NAN,
            "attempts": 0, "outcome": outcome, "reason": reason,
        })
    for row in downlink or ():
        add(row)
    return pa.Table.from_pydict(cols, schema=TRACE_SCHEMA)


def build_ledger(rows: list[dict[str, Any]], run_id: str) -> pa.Table:
    """The ERP ledgers in the ledger schema."""
    cols: dict[str, list[Any]] = {f.name: [] for f in LEDGER_SCHEMA}
    for r in rows:
        for name in cols:
            cols[name].append({"run_id": run_id, "replication": 0}.get(name, r.get(name)))
    return pa.Table.from_pydict(cols, schema=LEDGER_SCHEMA)


def build_lots(outbox: list[dict[str, Any]], scenario: Scenario, run_id: str,
               state: Path | None = None, duration: float = math.inf) -> pa.Table:
    """Completed lots (goods receipts at the edge) with the QMS's decisions and the plant WMS's quality
    messages and shipments found under ``state`` (:func:`live.collect_downlink.lot_rows`); without them a
    lot is neither held nor shipped (NaN rather than invented)."""
    inspected = {name: bool(item.inspection) for name, item in scenario.landscape.items.items()}
    rows = lot_rows(outbox, state if state is not None else Path("/nonexistent"), inspected, run_id, duration)
    cols: dict[str, list[Any]] = {f.name: [r[f.name] for r in rows] for f in LOTS_SCHEMA}
    return pa.Table.from_pydict(cols, schema=LOTS_SCHEMA)


def live_run_record(scenario: Scenario, *, run_id: str, duration: float, wall_seconds: float = 0.0,
                    **live_fields: Any) -> RunRecord:
    """The ``run.json`` record of a live run: the shared fields from the scenario (faults and bursts that
    began before ``duration``), plus what only the live stack knows (``speed``, ``epoch``, ``drained``,
    ``services``, ``events``...)."""
    return run_record(scenario, run_id=run_id, engine="live", duration=duration, wall_seconds=wall_seconds,
                      **live_fields)


def collect_run(run_dir: str | Path, scenario: Scenario, record: RunRecord) -> dict[str, int]:
    """Write trace/ledger/lots Parquet and ``run.json`` (``record`` plus the row counts) into ``run_dir``.

    Returns row counts. ``scenario.yaml`` is already there (the stack writes it before launching)."""
    run_dir = Path(run_dir)
    state = run_dir / "state"
    outbox, deliveries, acks = split_acks(read_outboxes(state), read_deliveries(state))  # MES order acks
    inspected = {name: bool(item.inspection) for name, item in scenario.landscape.items.items()}
    deliveries = gate_receipts(outbox, deliveries, state, inspected, record.duration)  # held for disposition
    trace = build_trace(outbox, deliveries, record.run_id, read_erp_times(state),
                        downlink_trace_rows(state, record.run_id, acks))
    ledger = build_ledger(read_ledgers(state), record.run_id)
    lots = build_lots(outbox, scenario, record.run_id, state, record.duration)
    counts = {"trace": trace.num_rows, "ledger": ledger.num_rows, "lots": lots.num_rows,
              "source_records": len(outbox)}
    record = record.model_copy(update={"counts": counts, "breaker": read_breaker(state)})
    write_run_folder(run_dir, record, trace, ledger, lots)
    return counts
