"""Side-by-side comparison of two runs: SLA/KPI/invariant deltas and overlaid charts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from reports import palette
from reports.backlog import fault_windows
from reports.charts import CLOCK_LABEL, Chart, _clock_axis, decorate, legend, to_clock
from reports.evaluate import evaluate_prepared
from reports.html import render_template
from reports.narrative import count, dur
from reports.prep import Prepared, prepare
from reports.runfolder import load_run
from reports.timeseries import bucket_width, build_series, latency_by_bucket


@dataclass
class Delta:
    """One compared figure."""

    group: str
    name: str
    a: float | None
    b: float | None
    kind: str  # duration / share / count / rate
    verdict_a: str = ""
    verdict_b: str = ""

    @property
    def delta(self) -> float | None:
        """B minus A (``None`` when either is missing)."""
        return None if self.a is None or self.b is None else self.b - self.a

    def fmt(self, value: float | None) -> str:
        """Format a value of this figure's kind."""
        if value is None:
            return "n/a"
        if self.kind == "share":
            return f"{value * 100:.2f} %"
        if self.kind == "rate":
            return f"{value:.2f}/s"
        if self.kind == "duration":
            return ("-" if value < 0 else "") + dur(abs(value))
        return count(value)

    def row(self) -> list[str]:
        """Formatted cells: figure, A, B, delta, verdicts."""
        d = self.delta
        if d is None:
            delta = "n/a"
        elif abs(d) < 1e-12:
            delta = "0"
        else:
            delta = ("+" if d > 0 else "") + self.fmt(d)
        return [f"{self.group}: {self.name}", self.fmt(self.a), self.fmt(self.b), delta, self.verdict_a,
                self.verdict_b]


def _verdict(status: str) -> str:
    return {"pass": "pass", "breach": "BREACH", "no_data": "no data", "not_set": "—"}[status]


def deltas(a: dict[str, Any], b: dict[str, Any]) -> list[Delta]:
    """Every SLA statistic, invariant and KPI of run A next to run B."""
    out: list[Delta] = []
    for name, sa in a["slas"].items():
        sb = b["slas"][name]
        kind = {"share": "share", "count": "count"}.get(sa["kind"], "duration")
        stats = [c["stat"] for c in sa["checks"]] or [k for k in sa["stats"] if k in ("p95", "share", "worst",
                                                                                      "count")]
        for stat in stats:
            va, vb = sa["stats"].get(stat, {}).get("value"), sb["stats"].get(stat, {}).get("value")
            if stat == "max" and name == "recovery_time":
                va, vb = sa["stats"]["worst"]["value"], sb["stats"]["worst"]["value"]
            out.append(Delta("SLA", f"{sa['label']} {stat}", va, vb, kind, _verdict(sa["status"]),
                             _verdict(sb["status"])))
    for name, ia in a["invariants"].items():
        ib = b["invariants"][name]
        out.append(Delta("invariant", ia["label"], ia["count"], ib["count"], "count",
                         "pass" if ia["passed"] else "FAIL", "pass" if ib["passed"] else "FAIL"))
    ka, kb = a["kpis"], b["kpis"]
    for key, label, kind in (("success_rate", "transaction success", "share"), ("dlq_count", "DLQ count", "count"),
                             ("retry_volume", "retry volume", "count"), ("transactions", "transactions", "count")):
        out.append(Delta("KPI", label, ka[key]["mean"], kb[key]["mean"], kind))
    for erp in sorted(set(ka["erp_load"]) | set(kb["erp_load"])):
        la, lb = ka["erp_load"].get(erp), kb["erp_load"].get(erp)
        out.append(Delta("KPI", f"{erp} peak postings/s", la and la["peak_per_s"]["mean"],
                         lb and lb["peak_per_s"]["mean"], "rate"))
    return out


def _axis(prep_a: Prepared, prep_b: Prepared) -> tuple[bool, str]:
    same = prep_a.run.start_clock == prep_b.run.start_clock
    return same, (CLOCK_LABEL if same else "elapsed scenario time (h)")


def _x(prep: Prepared, t: np.ndarray, same_clock: bool) -> np.ndarray:
    return to_clock(prep.run.start_clock, t) if same_clock else np.asarray(t) / 3600.0


def _finish(ax: Any, prep: Prepared, same: bool, title: str, xlabel: str, ylabel: str) -> None:
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if same:
        decorate(ax, prep.run.meta, prep.run.start_clock, fault_windows(prep.run.meta))
        _clock_axis(ax)
    legend(ax, fontsize=8, loc="upper right")


def overlay_charts(pa: Prepared, pb: Prepared, names: tuple[str, str]) -> list[Chart]:
    """Posting-delay p95 over time, ERP-posting backlog, and per-plant p95, A over B."""
    same, xlabel = _axis(pa, pb)
    width = bucket_width(max(pa.run.duration, pb.run.duration))
    charts = []
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax = fig.subplots()
    for prep, name, color in ((pa, names[0], palette.RUN_COLORS[0]), (pb, names[1], palette.RUN_COLORS[1])):
        lat = latency_by_bucket(prep, width)
        lat = lat[lat["flow"] != "order_release"].groupby("bucket_t")["p95"].max()
        ax.plot(_x(prep, lat.index.to_numpy() + width / 2, same), lat.to_numpy(), color=color, lw=1.4, label=name)
    title, ylabel = f"Worst posting-flow latency p95 per {width / 60:.0f}-min bucket", "latency p95 (s)"
    _finish(ax, pa, same, title, xlabel, ylabel)
    charts.append(Chart("cmp_latency", title, xlabel, ylabel, fig, "Fault windows and waves of run A marked."))

    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax = fig.subplots()
    for prep, name, color in ((pa, names[0], palette.RUN_COLORS[0]), (pb, names[1], palette.RUN_COLORS[1])):
        s = build_series(prep)
        ax.plot(_x(prep, s.grid, same), s.stage_backlog["erp_postings"], color=color, lw=1.4, label=name)
    title, ylabel = "ERP postings waiting", "postings waiting (count)"
    _finish(ax, pa, same, title, xlabel, ylabel)
    charts.append(Chart("cmp_backlog", title, xlabel, ylabel, fig, "Fault windows and waves of run A marked."))
    return charts


def compare_runs(run_a: Path, run_b: Path, out_dir: Path) -> dict[str, Any]:
    """Evaluate both runs, write ``compare.html`` into ``out_dir``; returns the comparison data."""
    pa, pb = prepare(load_run(run_a)), prepare(load_run(run_b))
    sa, sb = evaluate_prepared(pa), evaluate_prepared(pb)
    names = (str(sa["run"]["run_id"]), str(sb["run"]["run_id"]))
    if names[0] == names[1]:
        names = (f"A: {names[0]}", f"B: {names[1]}")
    rows = deltas(sa, sb)
    charts = overlay_charts(pa, pb, names)
    out_dir.mkdir(parents=True, exist_ok=True)
    html = render_template("compare.html.j2", names=names, a=sa, b=sb, rows=[d.row() for d in rows],
                           charts=charts)
    (out_dir / "compare.html").write_text(html, encoding="utf-8")
    return {"a": sa, "b": sb, "names": names, "deltas": rows, "html": out_dir / "compare.html"}
