"""Time-bucketed series for the charts, all vectorised (numpy bucketing, sorted-event backlogs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kernel.trace import DEAD_LETTERED, IN_FLIGHT, TELEMETRY
from reports import backlog as bl
from reports.invariants import erp_name
from reports.prep import Prepared, map_text

_NICE_WIDTHS = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
TARGET_BUCKETS = 150


def bucket_width(duration: float) -> float:
    """A round bucket width (1 min … 1 day) giving at most ~150 buckets over the run."""
    for w in _NICE_WIDTHS:
        if duration / w <= TARGET_BUCKETS:
            return float(w)
    return float(_NICE_WIDTHS[-1])


@dataclass
class Series:
    """Everything the charts plot, in scenario seconds."""

    width: float
    latency: pd.DataFrame  # flow, bucket_t, p50, p95, p99, n
    grid: np.ndarray
    stage_backlog: dict[str, np.ndarray]  # stage -> mean backlog over replications at grid times
    retries: pd.DataFrame  # bucket_t, retries, dead_letters (per replication)
    erp_load: pd.DataFrame  # erp, bucket_t, per_s
    breaker: list[dict[str, Any]]


def group_quantiles(groups: np.ndarray, values: np.ndarray, qs: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """Per-group quantiles (linear interpolation, like numpy's default) from one lexsort.

    Returns the sorted unique group ids, their sizes and one array per quantile.
    """
    # Sort by value (ties may land in any order: equal values give the same quantiles), then a stable
    # sort by group. Group ids that fit 16 bits get numpy's radix sort (linear), not timsort: on
    # fleet-size traces the two timsorts were most of the chart series' time and grew n log n.
    by_value = np.argsort(values)
    grouped = groups[by_value]
    if grouped.size and grouped.min() >= 0 and grouped.max() < np.iinfo(np.uint16).max:
        grouped = grouped.astype(np.uint16)
    order = by_value[np.argsort(grouped, kind="stable")]
    g, v = groups[order], values[order]
    starts = np.flatnonzero(np.concatenate([[True], g[1:] != g[:-1]])) if g.size else np.empty(0, np.int64)
    uniq, sizes = g[starts], np.diff(np.append(starts, g.size))  # g is sorted: groups are runs
    out = []
    for q in qs:
        pos = starts + q * (sizes - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, starts + sizes - 1)
        out.append(v[lo] + (v[hi] - v[lo]) * (pos - lo))
    return (uniq, sizes, *out)


def latency_by_bucket(prep: Prepared, width: float) -> pd.DataFrame:
    """p50/p95/p99 of flow latency per flow and bucket of creation time (all replications pooled)."""
    fd = prep.first_delivered
    latency = fd["latency"].to_numpy()
    flow = fd["flow"].astype(str) if not isinstance(fd["flow"].dtype, pd.CategoricalDtype) else fd["flow"]
    flow_codes, flow_names = pd.factorize(flow)
    keep = np.isfinite(latency) & (np.asarray(flow_names, dtype=object)[flow_codes] != TELEMETRY)
    if not keep.any():
        return pd.DataFrame(columns=["flow", "bucket_t", "p50", "p95", "p99", "n"])
    n_b = int(prep.run.duration // width) + 2
    bucket = np.clip((fd["t_created"].to_numpy()[keep] // width).astype(np.int64), 0, n_b - 1)
    groups = flow_codes[keep].astype(np.int64) * n_b + bucket
    uniq, sizes, p50, p95, p99 = group_quantiles(groups, latency[keep], (0.5, 0.95, 0.99))
    return pd.DataFrame({"flow": np.asarray(flow_names, dtype=object)[uniq // n_b],
                         "bucket_t": (uniq % n_b) * width, "p50": p50, "p95": p95, "p99": p99, "n": sizes})


def _ends(rows: pd.DataFrame, col: str) -> np.ndarray:
    """When a row leaves a stage: the hop ``col``; else never if in flight; else its last hop."""
    hop = rows[col].to_numpy()
    in_flight = (rows["outcome"] == IN_FLIGHT).to_numpy()
    return np.where(np.isfinite(hop), hop, np.where(in_flight, np.inf, rows["last_hop"].to_numpy()))


def stage_backlog(prep: Prepared, grid: np.ndarray) -> dict[str, np.ndarray]:
    """Queue depth per stage: edge (created → broker), integration (broker → delivered), and the
    ERP-posting backlog used for recovery; means over replications."""
    rows = prep.first_rows
    rows = rows[(rows["flow"] != TELEMETRY).to_numpy()]
    n = prep.n_reps
    edge = bl.backlog_at(rows["t_created"].to_numpy(), _ends(rows, "t_broker"), grid) / n
    integration = bl.backlog_at(rows["t_broker"].to_numpy(), _ends(rows, "t_delivered"), grid) / n
    p = prep.postings
    erp = bl.backlog_at(p["t_created"].to_numpy(), p["t_end"].to_numpy(), grid) / n
    return {"edge": edge, "integration": integration, "erp_postings": erp}


def retries_by_bucket(prep: Prepared, width: float) -> pd.DataFrame:
    """Retries (attempts beyond the first) and dead letters per bucket of creation time, per replication."""
    t = prep.trace
    n_b = int(prep.run.duration // width) + 1
    created = t["t_created"].to_numpy()
    ok = np.isfinite(created)  # an engine may leave t_created empty for a row still in flight
    b = np.clip((created[ok] // width).astype(np.int64), 0, n_b - 1)
    attempts = np.nan_to_num(t["attempts"].to_numpy(np.float64)[ok], nan=1.0)
    retries = np.bincount(b, weights=np.clip(attempts - 1.0, 0, None), minlength=n_b) / prep.n_reps
    dead = np.bincount(b[(t["outcome"] == DEAD_LETTERED).to_numpy()[ok]], minlength=n_b) / prep.n_reps
    return pd.DataFrame({"bucket_t": np.arange(n_b) * width, "retries": retries, "dead_letters": dead})


def erp_load_by_bucket(prep: Prepared, width: float) -> pd.DataFrame:
    """ERP postings per second per ERP and bucket (mean over replications)."""
    led = prep.ledger
    if not len(led):
        return pd.DataFrame(columns=["erp", "bucket_t", "per_s"])
    frame = pd.DataFrame({"erp": map_text(led["erp"], erp_name),
                          "bucket_t": (led["t_posted"].to_numpy() // width) * width}).dropna()
    counts = frame.groupby(["erp", "bucket_t"]).size().rename("count").reset_index()
    counts["per_s"] = counts["count"] / width / prep.n_reps
    return counts


def build_series(prep: Prepared) -> Series:
    """All chart series of a run."""
    width = bucket_width(prep.run.duration)
    grid = bl.time_grid(prep.run.duration)
    return Series(width, latency_by_bucket(prep, width), grid, stage_backlog(prep, grid),
                  retries_by_bucket(prep, width), erp_load_by_bucket(prep, width),
                  list(prep.run.meta.get("breaker", [])))
