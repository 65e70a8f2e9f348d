"""Time evaluate + report on a synthetic fleet-week run folder (~1.5 M trace rows, 12 plants, 7 days).

    .venv/bin/python bench/bench_report.py [--rows 1500000] [--replications 1] [--keep DIR] [--pdf]

Builds the folder with numpy (not timed), then times load+evaluate and the full finalize_run
(sla.json + report.html [+ report.pdf]) separately.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from kernel.trace import ERP_POSTING_FLOWS, LEDGER_SCHEMA, LOTS_SCHEMA, TRACE_SCHEMA

WEEK = 7 * 86400.0
PLANTS = [f"P{i:02d}" for i in range(1, 13)]
FLOWS = list(ERP_POSTING_FLOWS) + ["order_release", "quality_hold", "master_data"]
WEIGHTS = np.array([10, 14, 30, 2, 8, 20, 6, 3, 1, 1], dtype=float)
OUTAGE = (2 * 86400.0 + 4 * 3600.0, 2 * 86400.0 + 4 * 3600.0 + 2700.0)


def build(root: Path, rows: int, seed: int = 1, replications: int = 1) -> Path:
    """Write a synthetic run folder with ``rows`` trace rows (including ~0.5 % redeliveries),
    spread over ``replications`` (rows are dealt out round-robin)."""
    rng = np.random.default_rng(seed)
    run_dir = root / "fleet-week"
    run_dir.mkdir(parents=True, exist_ok=True)
    n = int(rows / 1.005)
    t = np.sort(rng.uniform(0, WEEK - 600, n))
    plant = rng.integers(0, len(PLANTS), n)
    flow = rng.choice(len(FLOWS), n, p=WEIGHTS / WEIGHTS.sum())
    flow_names = np.asarray(FLOWS, dtype=object)[flow]
    delay = rng.exponential(2.0, n) + 0.1
    during = (t >= OUTAGE[0]) & (t < OUTAGE[1])
    drain = OUTAGE[1] + np.cumsum(during) * 0.02
    t_del = np.where(during, drain, t + delay)
    attempts = np.where(during, rng.integers(3, 9, n), 1)
    outcome = np.full(n, "delivered", dtype=object)
    dead = rng.random(n) < 2e-5
    outcome[dead] = "dead_lettered"
    t_del[dead] = np.nan
    reason = np.where(dead, "unmapped_item", "").astype(object)
    ids = pd.Series(np.asarray(PLANTS, dtype=object)[plant]) + "-" + pd.Series(np.arange(n)).astype(str)
    is_order = flow_names == "order_release"
    target = np.where(is_order, "MES", np.where(flow_names == "quality_hold", "WMS", "erp-legacy")).astype(object)
    frame = pd.DataFrame({
        "run_id": "fleet-week", "replication": (np.arange(n) % replications).astype(np.int32),
        "txn_id": ids.to_numpy(),
        "correlation_id": ids.to_numpy(), "flow": flow_names, "plant": np.asarray(PLANTS, dtype=object)[plant],
        "line": "L1", "source": "MES", "target": target, "item": np.where(flow % 2 == 0, "FG-100", "RM-10"),
        "lot": "", "qty": rng.integers(1, 50, n).astype(float), "unit": "EA", "schema_version": "v2",
        "t_created": t, "t_edge": t + 0.02, "t_broker": t + 0.05, "t_delivered": t_del,
        "t_acked": t_del + np.where(is_order, 20.0, 0.5), "attempts": attempts.astype(np.int32),
        "outcome": outcome, "reason": reason,
    })
    redelivered = frame.sample(frac=0.005, random_state=seed)
    redelivered = redelivered[redelivered["outcome"] == "delivered"].assign(
        outcome="duplicate_suppressed", reason="broker_redelivery", t_delivered=lambda d: d["t_delivered"] + 1.0)
    trace = pd.concat([frame, redelivered], ignore_index=True)
    pq.write_table(pa.Table.from_pandas(trace, schema=TRACE_SCHEMA, preserve_index=False), run_dir / "trace.parquet")
    posted = frame[frame["flow"].isin(ERP_POSTING_FLOWS) & (frame["outcome"] == "delivered")]
    ledger = pd.DataFrame({
        "run_id": "fleet-week", "replication": posted["replication"], "txn_id": posted["txn_id"],
        "flow": posted["flow"], "plant": posted["plant"], "item": posted["item"], "qty": posted["qty"],
        "unit": "EA", "erp": "legacy", "t_posted": posted["t_delivered"],
    })
    pq.write_table(pa.Table.from_pandas(ledger, schema=LEDGER_SCHEMA, preserve_index=False),
                   run_dir / "ledger.parquet")
    n_lots = 20000
    tc = np.sort(rng.uniform(0, WEEK - 7200, n_lots))
    held = rng.random(n_lots) < 0.05
    lots = pd.DataFrame({
        "run_id": "fleet-week", "replication": np.zeros(n_lots, np.int32),
        "lot": [f"LOT{i:06d}" for i in range(n_lots)], "plant": np.asarray(PLANTS, dtype=object)[
            rng.integers(0, 12, n_lots)], "item": "FG-100", "requires_inspection": True, "held": held,
        "t_completed": tc, "t_hold": np.where(held, tc + 60, np.nan),
        "t_hold_at_wms": np.where(held, tc + 60 + rng.exponential(20, n_lots), np.nan),
        "t_release": np.nan, "t_release_at_wms": np.nan, "t_shipped": np.where(held, np.nan, tc + 3600),
        "shipped_while_held": False,
    })
    pq.write_table(pa.Table.from_pandas(lots, schema=LOTS_SCHEMA, preserve_index=False), run_dir / "lots.parquet")
    meta = {
        "run_id": "fleet-week", "scenario": "fleet-week", "engine": "virtual", "version": "0.1.0", "seed": seed,
        "replications": replications, "duration": WEEK, "start_clock": "2026-01-05T06:00:00", "wall_seconds": 0.0,
        "created_at": "2026-11-23T10:15:00",
        "plants": [{"id": p, "erp": "legacy", "lines": 4, "machines": 40} for p in PLANTS],
        "faults": [{"kind": "erp_outage", "start": OUTAGE[0], "end": OUTAGE[1], "erp": "legacy", "plants": "all"}],
        "waves": [{"name": "wave-1", "at": 4 * 86400.0, "plants": PLANTS[:4], "erp": "cloud"}],
        "breaker": [{"replication": 0, "target": "erp-legacy", "t": OUTAGE[0] + 5, "state": "open"},
                    {"replication": 0, "target": "erp-legacy", "t": OUTAGE[1] + 3, "state": "closed"}],
        "slas": {"inventory_posting_delay": {"p95": 900.0}, "reconciled_within": {"window": 3600, "min_share": 0.99},
                 "recovery_time": {"max": 3600.0}},
    }
    (run_dir / "run.json").write_text(json.dumps(meta))
    return run_dir


def main() -> None:
    """Build the folder, then time evaluate_run and finalize_run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_500_000)
    parser.add_argument("--keep", type=Path, default=None, help="build the run folder here and keep it")
    parser.add_argument("--pdf", action="store_true", help="also time the PDF")
    parser.add_argument("--replications", type=int, default=1)
    args = parser.parse_args()
    from reports.evaluate import evaluate_run
    from reports.finalize import finalize_run

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        t0 = time.perf_counter()
        run_dir = build(root, args.rows, replications=args.replications)
        t1 = time.perf_counter()
        rows = pq.read_metadata(run_dir / "trace.parquet").num_rows
        print(f"built {rows:,} trace rows in {t1 - t0:.1f} s")
        # CPU time is printed next to wall time: on a shared 2-core machine wall time mostly measures
        # the neighbours.
        t2, c2 = time.perf_counter(), time.process_time()
        evaluate_run(run_dir)
        t3, c3 = time.perf_counter(), time.process_time()
        verdict = finalize_run(run_dir, pdf=args.pdf)
        t4, c4 = time.perf_counter(), time.process_time()
        print(f"evaluate_run: wall {t3 - t2:.2f} s, cpu {c3 - c2:.2f} s")
        print(f"finalize_run (load + evaluate + sla.json + report.html{' + pdf' if args.pdf else ''}): "
              f"wall {t4 - t3:.2f} s, cpu {c4 - c3:.2f} s; passed={verdict.passed}; "
              f"html {(run_dir / 'report.html').stat().st_size / 1e3:.0f} kB")
        print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
