"""SLA figures per replication and their verdicts (mean over replications with a 95 % CI).

Each SLA of :class:`scenarios.spec.SlaSpec` becomes a dict with the threshold(s), the measured
value(s), per-replication values and ``status`` (``pass``, ``breach`` or ``no_data``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from kernel.trace import DEAD_LETTERED, ORDER_RELEASE, SHIPMENT
from reports import backlog as bl
from reports.prep import Prepared
from reports.stats import PERCENTILES, mean_ci, none_if_nan, percentile

LABELS = {
    "order_release_latency": "Order release latency",
    "inventory_posting_delay": "Inventory posting delay",
    "shipment_posting_delay": "Shipment posting delay",
    "quality_hold_propagation": "Quality hold propagation",
    "reconciled_within": "Reconciled within window",
    "recovery_time": "Recovery time after faults",
    "dlq": "Dead-letter queue",
}
DEFAULT_RECON_WINDOW = 1800.0


def _by_rep(reps: np.ndarray, values: np.ndarray, n_reps: int) -> list[np.ndarray]:
    order = np.argsort(reps, kind="stable")
    reps, values = reps[order], values[order]
    cuts = np.searchsorted(reps, np.arange(n_reps + 1))
    return [values[cuts[r]: cuts[r + 1]] for r in range(n_reps)]


def latency_samples(prep: Prepared, name: str) -> list[np.ndarray]:
    """Per-replication samples (seconds) of a percentile SLA."""
    if name == "quality_hold_propagation":
        lots = prep.run.lots
        held = lots[lots["held"].fillna(False).to_numpy(bool) & np.isfinite(lots["t_hold"].to_numpy())]
        # A hold that never reached the WMS counts as lasting until the end of the run (a lower bound).
        at_wms = held["t_hold_at_wms"].fillna(prep.run.duration).to_numpy()
        return _by_rep(held["replication"].to_numpy(), at_wms - held["t_hold"].to_numpy(), prep.n_reps)
    if name == "order_release_latency":
        fd = prep.first_delivered
        rows = fd[(fd["flow"] == ORDER_RELEASE).to_numpy()]
        return _by_rep(rows["replication"].to_numpy(), rows["latency"].to_numpy(), prep.n_reps)
    p = prep.postings
    is_ship = (p["flow"] == SHIPMENT).to_numpy()
    sel = (is_ship if name == "shipment_posting_delay" else ~is_ship) & np.isfinite(p["delay"].to_numpy())
    return _by_rep(p["replication"].to_numpy()[sel], p["delay"].to_numpy()[sel], prep.n_reps)


def _figure(per_rep: list[float]) -> dict[str, Any]:
    ci = mean_ci(per_rep)
    out: dict[str, Any] = {"value": ci["mean"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"]}
    if len(per_rep) > 1:
        out["per_replication"] = [none_if_nan(v) for v in per_rep]
    return out


def percentile_sla(prep: Prepared, name: str, spec: Any) -> dict[str, Any]:
    """A p50/p95/p99/max SLA: every stated threshold is checked against the mean over replications."""
    samples = latency_samples(prep, name)
    stats = {s: _figure([percentile(x, s) for x in samples]) for s in PERCENTILES}
    checks = []
    for stat in PERCENTILES:
        threshold = getattr(spec, stat, None) if spec is not None else None
        if threshold is None:
            continue
        value = stats[stat]["value"]
        passed = None if value is None else bool(value <= threshold + 1e-9)
        checks.append({"stat": stat, "threshold": float(threshold), **stats[stat], "passed": passed})
    out = {"name": name, "label": LABELS[name], "kind": "percentile", "unit": "s",
           "samples": int(sum(len(x) for x in samples)), "stats": stats, "checks": checks}
    if name == "quality_hold_propagation":
        lots = prep.run.lots
        held = lots["held"].fillna(False).to_numpy(bool) & np.isfinite(lots["t_hold"].to_numpy())
        out["unpropagated"] = int((held & ~np.isfinite(lots["t_hold_at_wms"].to_numpy())).sum())
    return _status(out, spec is not None)


def _status(out: dict[str, Any], configured: bool) -> dict[str, Any]:
    out["configured"] = configured
    verdicts = [c["passed"] for c in out["checks"]]
    if not configured or not verdicts:
        out["status"], out["passed"] = "not_set", True
    elif any(v is False for v in verdicts):
        out["status"], out["passed"] = "breach", False
    elif all(v is None for v in verdicts):
        out["status"], out["passed"] = "no_data", True
    else:
        out["status"], out["passed"] = "pass", True
    return out


def reconciliation(prep: Prepared, spec: Any) -> dict[str, Any]:
    """Share of ERP-posting source transactions delivered within the window.

    Transactions created so late that their window reaches past the end of the run and that are not
    delivered yet cannot be judged and are left out of the denominator.
    """
    window = float(spec.window) if spec is not None else DEFAULT_RECON_WINDOW
    p = prep.postings
    delay = p["delay"].to_numpy()
    ok = np.isfinite(delay) & (delay <= window + 1e-9)
    judged = ok | (p["t_created"].to_numpy() + window <= prep.run.duration)
    reps = p["replication"].to_numpy()
    shares, totals, good = [], [], []
    for r in prep.reps():
        sel = (reps == r) & judged
        n, k = int(sel.sum()), int((sel & ok).sum())
        totals.append(n)
        good.append(k)
        shares.append(k / n if n else math.nan)
    fig = _figure(shares)
    check = {"stat": "share", "threshold": float(spec.min_share) if spec is not None else None, **fig}
    check["passed"] = None if fig["value"] is None or spec is None else bool(fig["value"] >= spec.min_share - 1e-12)
    out = {"name": "reconciled_within", "label": LABELS["reconciled_within"], "kind": "share", "unit": "share",
           "window": window, "samples": int(sum(totals)), "reconciled": int(sum(good)),
           "not_reconciled": int(sum(totals) - sum(good)),
           "excluded_late": int((~judged).sum()), "checks": [check] if spec is not None else [],
           "stats": {"share": fig}}
    return _status(out, spec is not None)


def recovery_sla(prep: Prepared, spec: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Recovery time after each fault (per replication), and the SLA on the worst of them."""
    faults = bl.fault_windows(prep.run.meta)
    grid = bl.time_grid(prep.run.duration)
    p = prep.postings
    # Postings are sorted by key, hence by replication: each replication is one contiguous slice.
    cuts = np.searchsorted(p["replication"].to_numpy(), np.arange(prep.n_reps + 1))
    created, t_del, t_end = p["t_created"].to_numpy(), p["t_delivered"].to_numpy(), p["t_end"].to_numpy()
    affected = [bl.affected_mask(p, f) for f in faults]
    per_fault: list[dict[str, Any]] = [{**f, "replications": []} for f in faults]
    worst: list[float] = []
    any_unrecovered = False
    for r in prep.reps():
        sl = slice(cuts[r], cuts[r + 1])
        starts, ends = created[sl], t_end[sl]
        curve = bl.backlog_at(starts, ends, grid) if faults else grid
        rep_worst = 0.0
        for f, rec, mask in zip(faults, per_fault, affected, strict=True):
            m = mask[sl]
            effects = bl.fault_effects(starts[m], t_del[sl][m], ends[m], f)
            # Recovery on the backlog the fault touches: one plant's WAN outage is judged on that
            # plant's postings, not diluted in the whole landscape's.
            if m.all():
                f_curve, f_starts, f_ends = curve, starts, ends
            else:
                f_starts, f_ends = starts[m], ends[m]
                f_curve = bl.backlog_at(f_starts, f_ends, grid)
            res = {"replication": r, **bl.recovery(f_curve, grid, f, faults, f_starts, f_ends), **effects}
            rec["replications"].append(res)
            if res["next_fault_first"]:
                continue  # not measurable on its own: the next fault's recovery includes this backlog
            seconds = res["seconds"] if res["recovered"] else res["lower_bound"]
            any_unrecovered |= not res["recovered"]
            rep_worst = max(rep_worst, seconds)
        worst.append(rep_worst if faults else math.nan)
    for rec in per_fault:
        rr = rec["replications"]
        rec["recovery"] = _figure([x["seconds"] if x["recovered"] else x["lower_bound"] for x in rr])
        rec["recovered_all"] = all(x["recovered"] for x in rr)
        rec["next_fault_first"] = any(x["next_fault_first"] for x in rr)
        for key in ("queued", "queued_delivered", "queued_undelivered", "created_during"):
            rec[key] = _figure([x[key] for x in rr])["value"]
        rec["drained_within"] = _figure([x["drained_within"] for x in rr])["value"]
        rec["peak_backlog"] = _figure([x["peak_backlog"] for x in rr])["value"]
        if prep.n_reps > 3:
            rec["replications"] = rr[:3]  # keep sla.json small; the aggregate figures cover the rest
    fig = _figure(worst)
    checks = []
    if spec is not None and faults:
        passed = None if fig["value"] is None else bool(fig["value"] <= spec.max + 1e-9 and not any_unrecovered)
        checks.append({"stat": "max", "threshold": float(spec.max), **fig, "passed": passed})
    out = {"name": "recovery_time", "label": LABELS["recovery_time"], "kind": "duration", "unit": "s",
           "faults": len(faults), "unrecovered": any_unrecovered, "stats": {"worst": fig}, "checks": checks,
           "samples": len(faults)}
    out = _status(out, spec is not None)
    if spec is not None and not faults:
        out["status"] = "no_data"  # a threshold but nothing to recover from
    return out, per_fault


def dlq_sla(prep: Prepared, spec: Any) -> dict[str, Any]:
    """Dead-lettered rows per replication against ``max_count``."""
    t = prep.trace
    dead = (t["outcome"] == DEAD_LETTERED).to_numpy()
    counts = np.bincount(t["replication"].to_numpy()[dead].astype(np.int64), minlength=prep.n_reps)
    fig = _figure([float(c) for c in counts[: prep.n_reps]])
    checks = []
    if spec is not None:
        checks.append({"stat": "count", "threshold": float(spec.max_count), **fig,
                       "passed": bool(fig["value"] <= spec.max_count)})
    out = {"name": "dlq", "label": LABELS["dlq"], "kind": "count", "unit": "rows", "samples": int(dead.sum()),
           "stats": {"count": fig}, "checks": checks}
    return _status(out, spec is not None)


def evaluate_slas(prep: Prepared) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """All SLAs of the run (configured or not, so the report can show the figures) and fault recovery."""
    slas = prep.run.slas
    out: dict[str, dict[str, Any]] = {}
    for name in ("order_release_latency", "inventory_posting_delay", "shipment_posting_delay",
                 "quality_hold_propagation"):
        out[name] = percentile_sla(prep, name, getattr(slas, name))
    out["reconciled_within"] = reconciliation(prep, slas.reconciled_within)
    out["recovery_time"], faults = recovery_sla(prep, slas.recovery_time)
    out["dlq"] = dlq_sla(prep, slas.dlq)
    return out, faults

