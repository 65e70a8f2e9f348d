"""Fidelity of a virtual run against a live run of the same scenario: per flow, the posting delay's
p50/p95/p99, delivered counts and the recovery after each fault, side by side with the relative error
and whether the live figure lies inside the virtual replications' 95 % confidence interval.

Reads only the two run folders (``trace.parquet``, ``run.json``, ``sla.json``). The posting delay of a
copy is ``t_delivered - t_created`` of a posting delivered to an ERP and created within the run's
duration; the recovery after a fault is how long after its end every posting queued during it was
delivered (``drained_within`` in ``sla.json``); the hold propagation of a held lot is
``t_hold_at_wms - t_hold`` of the lots table (the QMS's decision to its arrival at the plant's WMS).
:func:`verdicts` judges the figures against the acceptance bars (:data:`BARS`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kernel.trace import DELIVERED, ERP_POSTING_FLOWS, QUALITY_HOLD

# Two-sided 95 % Student t quantiles by degrees of freedom (1.96 beyond).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}
QUANTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))
ALL_POSTINGS = "all postings"
# The acceptance bars: largest |relative error| of a figure, for flows with at least MIN_SAMPLES live postings
# (every recovery is judged).
BARS = {"p50 delay (s)": 0.10, "p95 delay (s)": 0.10, "delivered": 0.02, "recovery (s)": 0.10}
MIN_SAMPLES = 200


def t95(df: int) -> float:
    """The 95 % two-sided t quantile for ``df`` degrees of freedom (the next tabulated one below)."""
    if df <= 0:
        return math.nan
    known = [k for k in _T95 if k <= df]
    return _T95[max(known)] if df <= 30 else 1.96


@dataclass
class FidelityRow:
    """One figure: the live value, the virtual mean over replications with its 95 % CI."""

    flow: str
    figure: str
    live: float | None
    virtual: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    samples: int = 0  # live samples behind the figure

    @property
    def rel_error(self) -> float | None:
        """(virtual - live) / live; None when either is missing or live is 0."""
        if self.live is None or self.virtual is None or self.live == 0:
            return None
        return (self.virtual - self.live) / abs(self.live)

    @property
    def inside_ci(self) -> bool | None:
        """Whether the live value lies inside the virtual replications' CI (None without a CI)."""
        if self.live is None or self.ci_low is None or self.ci_high is None:
            return None
        return self.ci_low <= self.live <= self.ci_high

    def cells(self) -> list[str]:
        """Formatted cells: flow, figure, live, virtual, CI, relative error, inside CI, samples."""
        def num(v: float | None) -> str:
            return "n/a" if v is None else (f"{v:,.0f}" if self.figure == "delivered" else f"{v:.3f}")

        ci = "n/a" if self.ci_low is None else f"[{num(self.ci_low)}, {num(self.ci_high)}]"
        err = "n/a" if self.rel_error is None else f"{self.rel_error * 100:+.1f} %"
        inside = {None: "n/a", True: "yes", False: "no"}[self.inside_ci]
        return [self.flow, self.figure, num(self.live), num(self.virtual), ci, err, inside, str(self.samples)]


COLUMNS = ("flow", "figure", "live", "virtual", "virtual 95 % CI", "rel. error", "inside CI", "live samples")


def _summary(values: list[float]) -> tuple[float | None, float | None, float | None]:
    """Mean and 95 % CI of per-replication values (no CI from one replication)."""
    vals = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if vals.size == 0:
        return None, None, None
    mean = float(vals.mean())
    if vals.size < 2:
        return mean, None, None
    half = t95(vals.size - 1) * float(vals.std(ddof=1)) / math.sqrt(vals.size)
    return mean, mean - half, mean + half


def _postings(trace: pd.DataFrame, duration: float) -> pd.DataFrame:
    """Postings delivered to an ERP that were created within the run's duration (a live stack's plants keep
    confirming while it drains after the duration; the virtual engine creates nothing then)."""
    erp = trace.target.astype(str).str.lower().str.startswith("erp")
    rows = trace[erp & (trace.outcome == DELIVERED) & trace.flow.isin(ERP_POSTING_FLOWS) & (trace.t_created < duration)]
    return rows.assign(delay=rows.t_delivered - rows.t_created)


def _duration(run_dir: Path) -> float:
    try:
        return float(json.loads((run_dir / "run.json").read_text()).get("duration") or math.inf)
    except (OSError, ValueError):
        return math.inf


def _flow_rows(live: pd.DataFrame, virtual: pd.DataFrame, flow: str) -> list[FidelityRow]:
    reps = sorted(virtual.replication.unique()) if len(virtual) else [0]
    by_rep = {r: virtual[virtual.replication == r] for r in reps}
    rows = []
    for name, q in QUANTILES:
        live_v = float(live.delay.quantile(q)) if len(live) else None
        per_rep = [float(part.delay.quantile(q)) if len(part) else None for part in by_rep.values()]
        rows.append(FidelityRow(flow, f"{name} delay (s)", live_v, *_summary(per_rep), samples=len(live)))
    counts = [float(len(part)) for part in by_rep.values()]
    rows.append(FidelityRow(flow, "delivered", float(len(live)), *_summary(counts), samples=len(live)))
    return rows


def _recoveries(live_sla: dict, virtual_sla: dict) -> list[FidelityRow]:
    rows = []
    for lf, vf in zip(live_sla.get("faults", []), virtual_sla.get("faults", []), strict=False):
        if (lf.get("kind"), lf.get("start")) != (vf.get("kind"), vf.get("start")):
            continue
        live_v = [r.get("drained_within") for r in lf.get("replications", [])]
        live_v = next((v for v in live_v if v is not None), None)
        per_rep = [r.get("drained_within") for r in vf.get("replications", [])]
        label = f"{lf['kind']} at {lf['start']:g} s"
        queued = sum(int(r.get("queued") or 0) for r in lf.get("replications", []))
        rows.append(FidelityRow(label, "recovery (s)", live_v, *_summary(per_rep), samples=queued))
    return rows


def _holds(live_dir: Path, virtual_dir: Path) -> list[FidelityRow]:
    """Held lots and their hold propagation (p50, max), when either run held a lot."""
    def held(d: Path) -> pd.DataFrame:
        path = d / "lots.parquet"
        lots = pd.read_parquet(path) if path.is_file() else pd.DataFrame()
        if lots.empty or "t_hold" not in lots:
            return pd.DataFrame({"replication": [], "propagation": []})
        lots = lots[lots["held"].fillna(False).astype(bool) & lots["t_hold"].notna()]
        return lots.assign(propagation=lots["t_hold_at_wms"] - lots["t_hold"])

    live, virtual = held(live_dir), held(virtual_dir)
    if live.empty and virtual.empty:
        return []
    reps = sorted(virtual.replication.unique()) or [0]
    by_rep = [virtual[virtual.replication == r].propagation.dropna() for r in reps]
    arrived = live.propagation.dropna()
    counts = [float((virtual.replication == r).sum()) for r in reps]
    rows = [FidelityRow(QUALITY_HOLD, "held lots", float(len(live)), *_summary(counts), samples=len(live))]
    for name, stat in (("p50", lambda x: float(x.median())), ("max", lambda x: float(x.max()))):
        live_v = stat(arrived) if len(arrived) else None
        rows.append(FidelityRow(QUALITY_HOLD, f"hold propagation {name} (s)", live_v,
                                *_summary([stat(x) if len(x) else None for x in by_rep]), samples=len(arrived)))
    return rows


def fidelity(live_dir: str | Path, virtual_dir: str | Path) -> list[FidelityRow]:
    """The fidelity table of ``virtual_dir`` against ``live_dir``: per ERP posting flow, then all
    postings, then the held lots and their hold propagation, then the recovery after each fault both
    runs saw."""
    live_dir, virtual_dir = Path(live_dir), Path(virtual_dir)
    duration = min(_duration(live_dir), _duration(virtual_dir))
    live = _postings(pd.read_parquet(live_dir / "trace.parquet"), duration)
    virtual = _postings(pd.read_parquet(virtual_dir / "trace.parquet"), duration)
    rows: list[FidelityRow] = []
    for flow in ERP_POSTING_FLOWS:
        if (live.flow == flow).any() or (virtual.flow == flow).any():
            rows += _flow_rows(live[live.flow == flow], virtual[virtual.flow == flow], flow)
    rows += _flow_rows(live, virtual, ALL_POSTINGS)
    slas = [json.loads((d / "sla.json").read_text()) if (d / "sla.json").is_file() else {}
            for d in (live_dir, virtual_dir)]
    return rows + _holds(live_dir, virtual_dir) + _recoveries(*slas)


def verdicts(rows: list[FidelityRow] | list[dict], min_samples: int = MIN_SAMPLES) -> list[tuple[dict, float, bool]]:
    """``(row, bar, inside)`` for every figure the acceptance judges: p50 and p95 delay and delivered of
    each flow with at least ``min_samples`` live postings (not the "all postings" sum), and every recovery.
    ``rows`` are :class:`FidelityRow` or the dicts of ``fidelity.json``."""
    judged = []
    for row in rows:
        row = row if isinstance(row, dict) else asdict(row) | {"rel_error": row.rel_error, "inside_ci": row.inside_ci}
        bar = BARS.get(row["figure"])
        counted = row["figure"] == "recovery (s)" or (row["samples"] >= min_samples and row["flow"] != ALL_POSTINGS)
        if bar is None or not counted or row["rel_error"] is None:
            continue
        judged.append((row, bar, abs(row["rel_error"]) <= bar))
    return judged


def verdict_lines(judged: list[tuple[dict, float, bool]]) -> list[str]:
    """One line per judged figure: live, virtual, relative error, bar and ``ok`` / ``MISS``."""
    return [f"{row['flow']:24s} {row['figure']:15s} live {row['live']:9.2f} virtual {row['virtual']:9.2f} "
            f"error {row['rel_error'] * 100:+6.1f} % (bar {bar * 100:.0f} %) {'ok' if inside else 'MISS'}"
            for row, bar, inside in judged]


def engines(run_a: str | Path, run_b: str | Path) -> tuple[str, str]:
    """The engines of two run folders (from ``run.json``; empty when unreadable)."""
    def engine(d: Path) -> str:
        try:
            return json.loads((Path(d) / "run.json").read_text()).get("engine", "")
        except (OSError, ValueError):
            return ""

    return engine(run_a), engine(run_b)


def write_fidelity(rows: list[FidelityRow], path: str | Path) -> Path:
    """``fidelity.json``: the rows with their relative errors and CI verdicts."""
    path = Path(path)
    path.write_text(json.dumps([asdict(r) | {"rel_error": r.rel_error, "inside_ci": r.inside_ci} for r in rows],
                               indent=1))
    return path
