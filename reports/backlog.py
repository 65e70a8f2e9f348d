"""Backlog curves and recovery after faults.

Backlog at time t = transactions with ``start <= t < end``, computed on a time grid from two sorted
arrays with ``searchsorted`` (an event cumsum), never per row.

Steady state, as used for recovery time: the usual integration backlog over the hour before the
fault (or all time outside fault windows when the fault starts within the first grid steps). The
backlog has recovered at the first grid time after the fault ends from which it stays at or below
``RECOVERY_FACTOR × baseline + RECOVERY_SLACK`` for ``RECOVERY_HOLD`` seconds (or to the end of the
run, or to the start of the next fault). The slack keeps a near-zero baseline from turning one
in-flight posting into "not recovered". The baseline is the 99th percentile, not the median, of the
backlog in that hour: a load that arrives in bursts (an edge posting once per reporting interval) is
normal up to its routine peak. When the next fault starts before the backlog recovered, recovery is
not measurable for this fault (``next_fault_first``); the next fault's recovery covers both. The
curve is that of the postings the fault touches (:func:`affected_mask`): one plant's WAN outage is
judged on that plant's backlog.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from reports.prep import map_text

RECOVERY_FACTOR = 1.2
RECOVERY_SLACK = 5.0  # transactions
RECOVERY_HOLD = 300.0  # seconds the backlog must stay low to count as recovered
BASELINE_WINDOW = 3600.0
BASELINE_PERCENTILE = 99.0  # the usual peak: a bursty load is normal up to its routine bursts


def grid_step(duration: float) -> float:
    """Sampling step for backlog curves: 60 s for long runs, finer for short ones."""
    return max(5.0, min(60.0, duration / 720.0))


def time_grid(duration: float, step: float | None = None) -> np.ndarray:
    """Sample times 0, step, ... up to and including ``duration``."""
    step = step or grid_step(duration)
    n = int(math.floor(duration / step)) + 1
    return np.arange(n, dtype=float) * step


def backlog_at(starts: np.ndarray, ends: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Number of intervals ``[start, end)`` containing each grid time (NaN starts are ignored)."""
    ok = np.isfinite(starts)
    s = np.sort(starts[ok])
    e = np.sort(np.where(np.isnan(ends[ok]), np.inf, ends[ok]))
    return np.searchsorted(s, grid, side="right") - np.searchsorted(e, grid, side="right")


def fault_windows(meta: dict[str, Any]) -> list[dict[str, Any]]:
    """Fault windows from run.json with numeric ``start``/``end`` (end = start for instant faults)."""
    out = []
    for i, f in enumerate(meta.get("faults", [])):
        try:
            start = float(f.get("start", f.get("at")))
        except (TypeError, ValueError):
            continue
        end = f.get("end")
        end = float(end) if end is not None else start + float(f.get("duration", 0.0) or 0.0)
        out.append({**f, "index": i, "start": start, "end": max(start, end)})
    return out


def _baseline(backlog: np.ndarray, grid: np.ndarray, start: float, faults: list[dict[str, Any]]) -> float:
    """The usual peak backlog before a fault at ``start``: the hour before it, leaving out other faults
    and the ``RECOVERY_HOLD`` after them; all quiet time of the run when too little of that hour is left."""
    step = grid[1] - grid[0] if grid.size > 1 else 1.0
    if start >= 2 * step:
        sel = (grid >= start - min(BASELINE_WINDOW, start)) & (grid < start)
        for f in faults:
            sel &= ~((grid >= f["start"]) & (grid <= f["end"] + RECOVERY_HOLD))
        if sel.sum() >= 2:
            return float(np.percentile(backlog[sel], BASELINE_PERCENTILE))
    sel = np.ones(grid.size, dtype=bool)
    for f in faults:
        sel &= ~((grid >= f["start"]) & (grid <= f["end"] + BASELINE_WINDOW))
    return float(np.percentile(backlog[sel], BASELINE_PERCENTILE)) if sel.any() else 0.0


def recovery(backlog: np.ndarray, grid: np.ndarray, fault: dict[str, Any], faults: list[dict[str, Any]],
             starts: np.ndarray | None = None, ends: np.ndarray | None = None) -> dict[str, Any]:
    """Recovery after one fault on one backlog curve: seconds from the fault's end to steady state.

    With the intervals (``starts``/``ends``) given, the moment is refined from grid resolution to the
    exact completion that brought the backlog down to the threshold.
    """
    baseline = _baseline(backlog, grid, fault["start"], faults)
    threshold = RECOVERY_FACTOR * baseline + RECOVERY_SLACK
    step = grid[1] - grid[0] if grid.size > 1 else 1.0
    hold = max(1, int(math.ceil(RECOVERY_HOLD / step)))
    # A later fault starting before recovery mixes its backlog into this one's: look only until then.
    later = [f["start"] for f in faults if f["start"] >= fault["end"] and f["start"] > fault["start"]]
    stop = int(np.searchsorted(grid, min(later))) if later else grid.size
    ok = (backlog <= threshold).astype(np.int64)
    cs = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(stop)
    upto = np.minimum(idx + hold, stop)
    stays = (cs[upto] - cs[idx]) == (upto - idx)
    cand = np.nonzero(stays & (grid[:stop] >= fault["end"]))[0]
    last = grid[cand[0]] if cand.size else grid[max(stop, 1) - 1]
    window = (grid >= fault["start"]) & (grid <= last)
    peak = float(backlog[window].max()) if window.any() else 0.0
    if cand.size == 0:
        cut = stop < grid.size
        until = float(grid[stop]) if cut else float(grid[-1])
        return {"recovered": False, "seconds": None, "lower_bound": max(0.0, until - fault["end"]),
                "next_fault_first": cut, "baseline": baseline, "threshold": threshold, "peak_backlog": peak}
    moment = float(grid[cand[0]])
    if starts is not None and ends is not None and cand[0] > 0:
        moment = _refine(starts, ends, max(float(grid[cand[0] - 1]), fault["end"]), moment, threshold)
    return {"recovered": True, "seconds": float(max(0.0, moment - fault["end"])), "lower_bound": None,
            "next_fault_first": False, "baseline": baseline, "threshold": threshold, "peak_backlog": peak}


def _refine(starts: np.ndarray, ends: np.ndarray, lo: float, hi: float, threshold: float) -> float:
    """Earliest time in ``[lo, hi]`` (``lo`` or a completion time) where the backlog is <= threshold."""
    finite = ends[np.isfinite(ends)]
    times = np.concatenate([[lo], np.sort(finite[(finite > lo) & (finite <= hi)]), [hi]])
    ok = np.nonzero(backlog_at(starts, ends, times) <= threshold)[0]
    return float(times[ok[0]]) if ok.size else hi


def affected_mask(postings: pd.DataFrame, fault: dict[str, Any]) -> np.ndarray:
    """Postings a fault plausibly touches: its plants, and its ERP when targets name ERP kinds."""
    mask = np.ones(len(postings), dtype=bool)
    plants = fault.get("plants", "all")
    if isinstance(plants, list) and plants:
        wanted = {str(p) for p in plants}
        mask &= map_text(postings["plant"], lambda v: "1" if v in wanted else "") == "1"
    erp = fault.get("erp")
    if erp in ("legacy", "cloud"):
        kind = map_text(postings["target"], lambda v: next((k for k in ("legacy", "cloud") if k in v.lower()), ""))
        if (kind != "").any():  # targets name their ERP (erp-legacy / erp-cloud): keep the fault's one
            mask &= kind == erp
    return mask


def fault_effects(created: np.ndarray, t_delivered: np.ndarray, t_end: np.ndarray,
                  fault: dict[str, Any]) -> dict[str, Any]:
    """What a fault did to the (affected) ERP postings of one replication: queued, drained, undelivered."""
    in_window = (created >= fault["start"]) & (created < max(fault["end"], fault["start"] + 1e-9))
    queued = in_window & (t_end >= fault["end"])
    delivered = queued & np.isfinite(t_delivered)
    last = float(np.max(t_delivered[delivered]) - fault["end"]) if delivered.any() else None
    return {
        "created_during": int(in_window.sum()),
        "queued": int(queued.sum()),
        "queued_delivered": int(delivered.sum()),
        "queued_undelivered": int((queued & ~np.isfinite(t_delivered)).sum()),
        "drained_within": last,
    }
