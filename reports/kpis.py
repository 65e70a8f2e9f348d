"""Run-level KPIs and the per-plant and per-wave tables."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from kernel.trace import DEAD_LETTERED, DUPLICATE_SUPPRESSED, SHIPMENT
from reports.invariants import erp_name
from reports.prep import Prepared, in_plants, map_text
from reports.stats import mean_ci, none_if_nan, percentile
from reports.timeseries import group_quantiles

LOAD_BUCKET = 60.0  # seconds; ERP peak load is the busiest minute


def _per_rep_count(reps: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    return np.bincount(reps.astype(np.int64), weights=weights, minlength=n)[:n]


def kpis(prep: Prepared) -> dict[str, Any]:
    """Success rate, DLQ, retries, ERP load and volume figures (means over replications, with CIs)."""
    t, n = prep.trace, prep.n_reps
    reps = t["replication"].to_numpy(np.int64)
    keys_total = prep.first_rows["replication"].to_numpy()
    keys_ok = prep.first_delivered["replication"].to_numpy()
    total, ok = _per_rep_count(keys_total, n), _per_rep_count(keys_ok, n)
    success = mean_ci([o / c if c else np.nan for o, c in zip(ok, total, strict=True)])
    dead = (t["outcome"] == DEAD_LETTERED).to_numpy()
    dlq = _per_rep_count(reps[dead], n)
    created_dead = t["t_created"].to_numpy()[dead]
    oldest = [prep.run.duration - float(np.nanmin(created_dead[reps[dead] == r], initial=np.inf)) if dlq[r]
              else 0.0 for r in prep.reps()]
    attempts = t["attempts"].to_numpy(np.float64)
    retries = _per_rep_count(reps, n, np.clip(np.nan_to_num(attempts, nan=1.0) - 1.0, 0.0, None))
    dupes_suppressed = _per_rep_count(reps[(t["outcome"] == DUPLICATE_SUPPRESSED).to_numpy()], n)
    return {
        "transactions": mean_ci(total.tolist()),
        "rows": len(t),
        "success_rate": success,
        "dlq_count": mean_ci(dlq.tolist()),
        "dlq_oldest_age": mean_ci(oldest),
        "retry_volume": mean_ci(retries.tolist()),
        "duplicates_suppressed": mean_ci(dupes_suppressed.tolist()),
        "erp_load": erp_load(prep),
    }


def erp_load(prep: Prepared) -> dict[str, dict[str, Any]]:
    """Postings per second per ERP: mean over the run and the busiest minute (means over replications)."""
    ledger = prep.ledger
    out: dict[str, dict[str, Any]] = {}
    if not len(ledger):
        return out
    erp = map_text(ledger["erp"], erp_name)
    n_buckets = int(np.ceil(prep.run.duration / LOAD_BUCKET)) + 1
    bucket = np.clip(np.nan_to_num(ledger["t_posted"].to_numpy() // LOAD_BUCKET, nan=0.0).astype(np.int64), 0,
                     n_buckets - 1)
    reps = ledger["replication"].to_numpy(np.int64)
    for name in sorted(set(erp)):
        sel = erp == name
        counts = np.bincount(reps[sel] * n_buckets + bucket[sel], minlength=prep.n_reps * n_buckets)
        counts = counts[: prep.n_reps * n_buckets].reshape(prep.n_reps, n_buckets)
        out[name] = {
            "postings": mean_ci(counts.sum(axis=1).tolist()),
            "mean_per_s": mean_ci((counts.sum(axis=1) / prep.run.duration).tolist()),
            "peak_per_s": mean_ci((counts.max(axis=1) / LOAD_BUCKET).tolist()),
        }
    return out


def _group_rows(prep: Prepared, plants: list[str], t_from: float = -np.inf) -> dict[str, Any]:
    """Figures for the postings and trace rows of ``plants`` created at or after ``t_from`` (pooled
    over replications, counts per replication). Works on numpy arrays: no frame copies per group."""
    n = prep.n_reps
    p = prep.postings
    sel = in_plants(p["plant"], plants) & (p["t_created"].to_numpy() >= t_from)
    delay = p["delay"].to_numpy()[sel]
    ship = (p["flow"] == SHIPMENT).to_numpy()[sel]
    flags = {c: p[c].to_numpy()[sel] for c in ("in_ledger", "dead_lettered", "in_flight", "rejected", "delivered")}
    accounted = flags["in_ledger"] | flags["dead_lettered"] | flags["in_flight"] | flags["rejected"]
    lost = int((~accounted | (flags["delivered"] & ~flags["in_ledger"])).sum())
    t = prep.trace
    tsel = in_plants(t["plant"], plants) & (t["t_created"].to_numpy() >= t_from)
    first = prep.first_rows
    n_txn = int((in_plants(first["plant"], plants) & (first["t_created"].to_numpy() >= t_from)).sum())
    fd = prep.first_delivered
    delivered = int((in_plants(fd["plant"], plants) & (fd["t_created"].to_numpy() >= t_from)).sum())
    attempts = np.nan_to_num(t["attempts"].to_numpy(np.float64)[tsel], nan=1.0)
    led = prep.ledger
    counts = np.unique(led["key"].to_numpy()[in_plants(led["plant"], plants)], return_counts=True)[1]
    return {
        "transactions": n_txn / n,
        "success_rate": none_if_nan(delivered / n_txn if n_txn else np.nan),
        "posting_p50": none_if_nan(percentile(delay[~ship], "p50")),
        "posting_p95": none_if_nan(percentile(delay[~ship], "p95")),
        "posting_max": none_if_nan(percentile(delay[~ship], "max")),
        "dlq": int(((t["outcome"] == DEAD_LETTERED).to_numpy() & tsel).sum()) / n,
        "retries": float(np.clip(attempts - 1.0, 0.0, None).sum()) / n,
        "lost": lost / n,
        "duplicates_posted": int((counts[counts > 1] - 1).sum()) / n,
    }


def _plant_erp(prep: Prepared) -> dict[str, str]:
    return {p.id: p.erp for p in prep.run.record.plants}


def _plant_index(series: pd.Series, plants: list[str]) -> np.ndarray:
    """Index of each row's plant in ``plants`` (-1 when absent), computed per category for categoricals."""
    where = {p: i for i, p in enumerate(plants)}
    if isinstance(series.dtype, pd.CategoricalDtype):
        lookup = np.asarray([where.get(str(c), -1) for c in series.cat.categories] + [-1], dtype=np.int64)
        codes = series.cat.codes.to_numpy()
        return lookup[np.where(codes < 0, len(lookup) - 1, codes)]
    return np.asarray([where.get(str(v), -1) for v in series], dtype=np.int64)


def _count(index: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    ok = index >= 0
    return np.bincount(index[ok], weights=None if weights is None else weights[ok], minlength=n)[:n]


def per_plant(prep: Prepared) -> list[dict[str, Any]]:
    """One row per plant (pooled over replications; counts are per replication), all plants at once."""
    erp = _plant_erp(prep)
    plants = sorted(({str(p) for p in prep.trace["plant"].unique()} | set(erp)) - {"nan", "None", ""})
    n_p, reps = len(plants), prep.n_reps
    t, p, led = prep.trace, prep.postings, prep.ledger
    n_txn = _count(_plant_index(prep.first_rows["plant"], plants), n_p)
    delivered = _count(_plant_index(prep.first_delivered["plant"], plants), n_p)
    t_idx = _plant_index(t["plant"], plants)
    dead = (t["outcome"] == DEAD_LETTERED).to_numpy()
    dlq = _count(t_idx[dead], n_p)
    attempts = np.nan_to_num(t["attempts"].to_numpy(np.float64), nan=1.0)
    retries = _count(t_idx, n_p, np.clip(attempts - 1.0, 0.0, None))
    p_idx = _plant_index(p["plant"], plants)
    accounted = (p["in_ledger"] | p["dead_lettered"] | p["in_flight"] | p["rejected"]).to_numpy()
    lost = _count(p_idx[~accounted | (p["delivered"] & ~p["in_ledger"]).to_numpy()], n_p)
    keys = led["key"].to_numpy()
    _, first, copies = np.unique(keys, return_index=True, return_counts=True)
    dups = _count(_plant_index(led["plant"], plants)[first], n_p, (copies - 1).astype(float))
    delay = p["delay"].to_numpy()
    sel = (p_idx >= 0) & np.isfinite(delay) & (p["flow"] != SHIPMENT).to_numpy()
    stats = {name: np.full(n_p, np.nan) for name in ("p50", "p95", "max")}
    if sel.any():
        groups, _, p50, p95, pmax = group_quantiles(p_idx[sel], delay[sel], (0.5, 0.95, 1.0))
        stats["p50"][groups], stats["p95"][groups], stats["max"][groups] = p50, p95, pmax
    return [{
        "plant": plant, "erp": erp.get(plant, ""), "transactions": float(n_txn[i]) / reps,
        "success_rate": none_if_nan(delivered[i] / n_txn[i] if n_txn[i] else np.nan),
        "posting_p50": none_if_nan(stats["p50"][i]), "posting_p95": none_if_nan(stats["p95"][i]),
        "posting_max": none_if_nan(stats["max"][i]), "dlq": float(dlq[i]) / reps,
        "retries": float(retries[i]) / reps, "lost": float(lost[i]) / reps, "duplicates_posted": float(dups[i]) / reps,
    } for i, plant in enumerate(plants)]


def per_wave(prep: Prepared) -> list[dict[str, Any]]:
    """One row per rollout wave: its plants before and after their cutover time."""
    rows = []
    for w in prep.run.record.waves:
        after = _group_rows(prep, w.plants, w.at)
        before = _before(prep, w.plants, w.at)
        rows.append({"wave": w.name, "at": w.at, "erp": erp_name(w.erp), "plants": list(w.plants),
                     "after": after, "before": before})
    return rows


def _before(prep: Prepared, plants: list[str], at: float) -> dict[str, Any]:
    p = prep.postings
    sel = in_plants(p["plant"], plants) & (p["t_created"].to_numpy() < at)
    delay = p["delay"].to_numpy()[sel]
    return {"posting_p95": none_if_nan(percentile(delay, "p95")), "transactions": int(sel.sum()) / prep.n_reps}



def dead_letters(prep: Prepared, examples: int = 5) -> list[dict[str, Any]]:
    """The dead-letter queue by plant, reason, item and unit: what the onboarding team has to fix."""
    t = prep.trace
    dead = t[(t["outcome"] == DEAD_LETTERED).to_numpy()]
    if not len(dead):
        return []
    cols = ["plant", "reason", "item", "unit"]
    frame = pd.DataFrame({c: dead[c].astype(str).to_numpy() for c in cols + ["flow", "txn_id"]})
    frame["t_created"] = dead["t_created"].to_numpy()
    out = []
    for key, group in frame.groupby(cols, sort=True):
        out.append({
            **dict(zip(cols, key, strict=True)),
            "count": len(group) / prep.n_reps,
            "flows": sorted(group["flow"].unique().tolist()),
            "oldest_age": none_if_nan(prep.run.duration - float(np.nanmin(group["t_created"].to_numpy()))),
            "examples": group["txn_id"].head(examples).tolist(),
        })
    return sorted(out, key=lambda r: -r["count"])
