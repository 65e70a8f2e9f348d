"""A small synthetic run folder with known answers, written with the real Parquet schemas."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kernel.trace import LEDGER_SCHEMA, LOTS_SCHEMA, TRACE_SCHEMA

DURATION = 43200.0
OUTAGE = (14400.0, 17100.0)  # 45 minutes
PLANTS = ("P01", "P02")
POSTING_FLOWS = ("material_issue", "goods_receipt", "inventory_move", "shipment")
SCENARIO_YAML = """\
name: fixture-outage
description: Two plants, a 45 minute legacy ERP outage.
run: {duration: 12h, seed: 7, replications: 1}
landscape:
  erp: {kind: legacy}
  items:
    FG-100: {unit: EA, inspection: true, hold_rate: 0.05}
  plants:
    - {id: P, count: 2, lines: 1, machines_per_line: 2}
faults:
  - {kind: erp_outage, at: 4h, duration: 45m, erp: legacy}
rollout:
  waves: []
slas:
  order_release_latency: {p95: 2m}
  inventory_posting_delay: {p95: 15m}
  quality_hold_propagation: {max: 10m}
  reconciled_within: {window: 1h, min_share: 0.99}
  recovery_time: {max: 1h}
  dlq: {max_count: 5}
"""


@dataclass
class Expected:
    """What the fixture's answers are, by construction."""

    queued_during_outage: int
    drained_within: float
    lost_ids: list[str] = field(default_factory=list)
    duplicate_ids: list[str] = field(default_factory=list)
    held_shipped: list[str] = field(default_factory=list)
    dlq: int = 0


def _rows(n: int) -> dict[str, list]:
    return {f.name: [None] * n for f in TRACE_SCHEMA}


def build_run(root: Path, *, faults: bool = True, lost: bool = True, duplicate: bool = True,
              held_shipped: bool = True, replications: int = 1, slow: float = 0.0,
              run_id: str = "fixture-run", waves: list[dict] | None = None,
              extra_rows: list[dict] | None = None) -> tuple[Path, Expected]:
    """Write a run folder under ``root``; ``slow`` adds seconds to every normal posting delay;
    ``extra_rows`` are trace rows (overrides of a P01 material issue with no hops reached)."""
    run_dir = root / run_id
    run_dir.mkdir(parents=True)
    trace: list[dict] = []
    ledger: list[dict] = []
    lots: list[dict] = []
    queued = 0
    drained = 0.0
    exp = Expected(queued_during_outage=0, drained_within=0.0)
    for rep in range(replications):
        drain_at = OUTAGE[1]
        for pi, plant in enumerate(PLANTS):
            for i, t in enumerate(np.arange(30.0 + pi * 7, DURATION - 120, 60.0)):
                txn = f"{plant}-{i:06d}"
                flow = POSTING_FLOWS[i % len(POSTING_FLOWS)]
                delay = 2.0 + slow + (i % 5) * 0.5 + rep * 0.1
                t_del = t + delay
                attempts = 1
                if faults and OUTAGE[0] <= t < OUTAGE[1]:
                    drain_at += 1.0  # the queue drains at one posting per second after the outage
                    t_del = drain_at
                    attempts = 4
                    if rep == 0:
                        queued += 1
                        drained = t_del - OUTAGE[1]
                row = dict(run_id=run_id, replication=rep, txn_id=txn, correlation_id=txn, flow=flow,
                           plant=plant, line=f"{plant}-L1", source="MES", target="erp-legacy",
                           item="FG-100", lot="", qty=float(1 + i % 3), unit="EA", schema_version="v2",
                           t_created=float(t), t_edge=float(t) + 0.05, t_broker=float(t) + 0.1,
                           t_delivered=float(t_del), t_acked=float(t_del) + 0.5, attempts=attempts,
                           outcome="delivered", reason="")
                trace.append(row)
                ledger.append(dict(run_id=run_id, replication=rep, txn_id=txn, flow=flow, plant=plant,
                                   item="FG-100", qty=row["qty"], unit="EA", erp="legacy", t_posted=t_del))
            for j, t in enumerate(np.arange(100.0, DURATION, 600.0)):
                txn = f"{plant}-OR{j:04d}"
                trace.append(dict(run_id=run_id, replication=rep, txn_id=txn, correlation_id=txn,
                                  flow="order_release", plant=plant, line=f"{plant}-L1", source="ERP",
                                  target="MES", item="FG-100", lot="", qty=100.0, unit="EA",
                                  schema_version="v2", t_created=float(t), t_edge=np.nan,
                                  t_broker=float(t) + 0.1, t_delivered=float(t) + 10.0,
                                  t_acked=float(t) + 30.0 + (j % 4) * 10.0, attempts=1,
                                  outcome="delivered", reason=""))
            for k in range(4):
                lot = f"{plant}-LOT{k}"
                held = k == 1
                lots.append(dict(run_id=run_id, replication=rep, lot=lot, plant=plant, item="FG-100",
                                 requires_inspection=True, held=held, t_completed=3600.0 * (k + 1),
                                 t_hold=3600.0 * (k + 1) + 60 if held else np.nan,
                                 t_hold_at_wms=3600.0 * (k + 1) + 60 + 45.0 if held else np.nan,
                                 t_release=np.nan, t_release_at_wms=np.nan,
                                 t_shipped=3600.0 * (k + 1) + 7200 if not held else np.nan,
                                 shipped_while_held=False))
        # A dead-lettered posting with a reason: accounted for, counts in the DLQ.
        trace.append({**trace[5], "txn_id": "P02-DLQ1", "replication": rep, "t_created": 5000.0,
                      "t_delivered": np.nan, "t_acked": np.nan, "attempts": 20, "outcome": "dead_lettered",
                      "reason": "unmapped_item", "plant": "P02"})
        if lost:
            base = {**trace[7], "replication": rep, "plant": "P01", "t_created": 20000.0}
            trace.append({**base, "txn_id": "P01-LOST1", "t_delivered": 20002.0})  # delivered, never posted
            trace.append({**base, "txn_id": "P02-DROP1", "plant": "P02", "t_delivered": np.nan,
                          "t_acked": np.nan, "t_broker": np.nan, "outcome": "rejected",
                          "reason": "edge_overflow_dropped"})
        if duplicate:
            first = next(r for r in trace if r["txn_id"] == "P01-000010" and r["replication"] == rep)
            trace.append({**first, "t_delivered": first["t_delivered"] + 30.0, "attempts": 2,
                          "reason": "broker_redelivery"})
            posted = next(r for r in ledger if r["txn_id"] == "P01-000010" and r["replication"] == rep)
            ledger.append({**posted, "t_posted": posted["t_posted"] + 30.0})
        if held_shipped:
            lots.append(dict(run_id=run_id, replication=rep, lot="P01-LOTBAD", plant="P01", item="FG-100",
                             requires_inspection=True, held=True, t_completed=30000.0, t_hold=30100.0,
                             t_hold_at_wms=30130.0, t_release=np.nan, t_release_at_wms=np.nan,
                             t_shipped=30200.0, shipped_while_held=True))
    template = {**trace[0], "t_edge": np.nan, "t_broker": np.nan, "t_delivered": np.nan, "t_acked": np.nan}
    trace.extend({**template, **row} for row in (extra_rows or []))
    exp.queued_during_outage = queued
    exp.drained_within = drained
    exp.lost_ids = ["P01-LOST1", "P02-DROP1"] if lost else []
    exp.duplicate_ids = ["P01-000010"] if duplicate else []
    exp.held_shipped = ["P01-LOTBAD"] if held_shipped else []
    exp.dlq = 1
    _write(run_dir / "trace.parquet", trace, TRACE_SCHEMA)
    _write(run_dir / "ledger.parquet", ledger, LEDGER_SCHEMA)
    _write(run_dir / "lots.parquet", lots, LOTS_SCHEMA)
    (run_dir / "scenario.yaml").write_text(SCENARIO_YAML)
    meta = {
        "run_id": run_id, "scenario": "fixture-outage", "engine": "virtual", "version": "0.1.0", "seed": 7,
        "replications": replications, "duration": DURATION, "start_clock": "2026-01-05T06:00:00",
        "wall_seconds": 1.5, "created_at": "2026-11-23T10:15:00",
        "plants": [{"id": p, "erp": "legacy", "lines": 1, "machines": 2} for p in PLANTS],
        "faults": [{"kind": "erp_outage", "start": OUTAGE[0], "end": OUTAGE[1], "erp": "legacy",
                    "plants": "all"}] if faults else [],
        "waves": waves or [],
        "breaker": [{"replication": 0, "target": "erp-legacy", "t": OUTAGE[0] + 5.2, "state": "open"},
                    {"replication": 0, "target": "erp-legacy", "t": OUTAGE[0] + 35.2, "state": "half_open"},
                    {"replication": 0, "target": "erp-legacy", "t": OUTAGE[1] + 10.0, "state": "closed"}]
        if faults else [],
        "slas": {"order_release_latency": {"p95": 120.0}, "inventory_posting_delay": {"p95": 900.0},
                 "quality_hold_propagation": {"max": 600.0},
                 "reconciled_within": {"window": 3600.0, "min_share": 0.99},
                 "recovery_time": {"max": 3600.0}, "dlq": {"max_count": 5}},
    }
    (run_dir / "run.json").write_text(json.dumps(meta, indent=2))
    return run_dir, exp


def _write(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    cols = {f.name: [r.get(f.name) for r in rows] for f in schema}
    pq.write_table(pa.table(cols, schema=schema), path)
