"""The load section of a report: Locust's statistics beside the chain's backlog and end-to-end latency.

Reads ``RUN_DIR/load/`` as ``synctwin load`` writes it: ``load.json`` (plan, stage verdicts, the
capacity search's knee), ``requests.parquet`` (Locust's aggregated history, one row a second) and
``chain.parquet`` (backlog, end-to-end latency, CPU per process, one row a second). Everything is
drawn on one axis: wall seconds since the load started.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from reports import palette
from reports.charts import Chart
from reports.view import Table

LOAD_DIR = "load"
X_LABEL = "wall seconds since the load started"


@dataclass
class LoadSection:
    """The load section's charts, tables and one-line verdicts."""

    summary: dict[str, Any]
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.is_file() else pd.DataFrame()


def _num(value: Any, fmt: str = "{:,.0f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return fmt.format(value)


def _plan_steps(plan: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    xs, ys, t = [], [], 0.0
    for stage in plan:
        xs += [t, t + stage["duration"]]
        ys += [stage["rate"], stage["rate"]]
        t += stage["duration"]
    return xs, ys


def load_chart(summary: dict[str, Any], requests: pd.DataFrame, chain: pd.DataFrame) -> Chart:
    """Four panels on one time axis: events/s (target, accepted, delivered), Locust response times,
    the chain's end-to-end p99 against the SLA, and the backlog."""
    fig = Figure(figsize=(10.0, 8.0), layout="constrained")
    axes = fig.subplots(4, 1, sharex=True)
    rate, resp, e2e, backlog = axes
    xs, ys = _plan_steps(summary.get("plan", []))
    ran = [float(f["t"].max()) for f in (requests, chain) if not f.empty and "t" in f]
    if ran and summary.get("stopped_at"):  # a capacity search stopped early: draw the plan as far as it ran
        end = max(ran)
        kept = [(min(x, end), y) for i, (x, y) in enumerate(zip(xs, ys, strict=True)) if xs[i - i % 2] < end]
        xs, ys = [x for x, _ in kept], [y for _, y in kept]
    rate.plot(xs, ys, color=palette.NEUTRAL_COLOR, ls="--", lw=1.2, label="target")
    if not requests.empty:
        rate.plot(requests["t"], requests["events_per_s"], lw=1.4, label="accepted by the gateway (Locust)")
        for col in ("50%", "95%", "99%"):
            if col in requests:
                resp.plot(requests["t"], requests[col], lw=1.2, label=f"p{col.rstrip('%')}")
        fails = requests.get("Failures/s")
        if fails is not None and float(fails.max() or 0) > 0:
            twin = resp.twinx()
            twin.plot(requests["t"], fails, color="tab:red", lw=1.0, label="failures/s")
            twin.set_ylabel("failures/s")
    if not chain.empty:
        if "delivered" in chain and chain["delivered"].notna().any():
            dt = chain["t"].diff().fillna(1.0).clip(lower=0.2)
            rate.plot(chain["t"], chain["delivered"] / dt, lw=1.2, label="delivered to the ERP (chain)")
        if "e2e_p99_s" in chain:
            e2e.plot(chain["t"], chain["e2e_p99_s"], lw=1.3, label="p99 end to end")
            e2e.plot(chain["t"], chain["e2e_p50_s"], lw=1.0, label="p50 end to end")
        if "backlog" in chain:
            backlog.plot(chain["t"], chain["backlog"], lw=1.3, color="tab:purple", label="consumer backlog")
    knee = (summary.get("capacity") or {}).get("knee_events_per_s")
    if knee:
        rate.axhline(knee, color=palette.PASS_COLOR, ls=":", lw=1.0, label=f"knee {knee:,.0f}/s")
    e2e.axhline(summary.get("sla_p99_s", 1.0), color="tab:red", ls=":", lw=1.0, label="SLA (p99)")
    rate.set_ylabel("events/s")
    resp.set_ylabel("response ms")
    e2e.set_ylabel("end to end s")
    backlog.set_ylabel("backlog events")
    backlog.set_xlabel(X_LABEL)
    for ax in axes:
        ax.grid(True, alpha=0.3, linewidth=0.6)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=8, frameon=False)
    return Chart("load", "Load and the chain's response", X_LABEL, "events/s; ms; s; events", fig,
                 "Locust's requests (accepted events/s, response-time percentiles over a sliding 10 s) beside "
                 "the chain's deliveries, end-to-end latency (gateway post to ERP posting, wall seconds) and "
                 "backlog (the workers' JetStream consumer), sampled every second.")


def stage_table(summary: dict[str, Any]) -> Table:
    """One row per stage of the plan that was judged."""
    rows = []
    for s in summary.get("stages", []):
        rows.append([s["label"], _num(s["target_events_per_s"]), _num(s["accepted_events_per_s"]),
                     _num(s.get("delivered_events_per_s")), f"{s['error_share']:.2%}",
                     _num(s.get("e2e_p50_s"), "{:.3f} s"), _num(s.get("e2e_p99_s"), "{:.3f} s"),
                     _num(s.get("backlog_end")), "pass" if s["holds"] else "BREACH",
                     "; ".join(s.get("reasons", []))])
    return Table("Load stages", ["stage", "target ev/s", "accepted ev/s", "delivered ev/s", "failed", "e2e p50",
                                 "e2e p99", "backlog at end", "verdict", "why"], rows,
                 f"Each stage is judged on its settled part (its first seconds are the ramp). It holds when p99 end "
                 f"to end ≤ {summary.get('sla_p99_s', 1.0):g} s, failures ≤ {summary.get('max_error_share', 0):.1%}, "
                 "the backlog at its end is at most one SLA span of arrivals and at least 90 % of the target was "
                 "delivered.")


def capacity_table(summary: dict[str, Any]) -> Table | None:
    """The knee and what limits it (CPU per process at the knee and where it broke)."""
    cap = summary.get("capacity")
    if not cap:
        return None
    names = sorted(set(cap.get("cpu_at_knee", {})) | set(cap.get("cpu_at_breach", {})))
    rows = [["knee (highest sustained, delivered)", _num(cap.get("knee_events_per_s")) + " events/s", ""],
            ["first stage that broke", _num(cap.get("breached_at_events_per_s")) + " events/s target",
             "; ".join(cap.get("breach_reasons", []))],
            ["limiting component", cap.get("limiting_component") or "—", cap.get("limiting_note") or ""]]
    rows += [[f"CPU cores: {n}", _num(cap["cpu_at_knee"].get(n), "{:.2f}") + " at the knee",
              _num(cap["cpu_at_breach"].get(n), "{:.2f}") + " where it broke"] for n in names]
    return Table("Capacity search", ["", "value", "detail"], rows,
                 "CPU per process (its whole process tree, psutil) averaged over the stage; 'machine' is every "
                 "core of the machine, including work that is not part of the chain.")


def cpu_table(summary: dict[str, Any]) -> Table | None:
    """CPU per event of each process over the whole load (the contention-proof figure)."""
    per_event = summary.get("cpu_us_per_event") or {}
    if not per_event:
        return None
    seconds = summary.get("cpu_seconds", {})
    chain = sum(v for k, v in per_event.items() if k not in ("machine", "load generator"))
    rows = [[name, _num(seconds.get(name), "{:.1f} s"), _num(value, "{:.1f}")] for name, value in per_event.items()]
    rows.append(["the chain (every process but the load generator)", "", _num(chain, "{:.1f}")])
    return Table("CPU per event", ["process", "CPU seconds", "µs per delivered event"], rows,
                 f"Over the load, per event delivered end to end ({summary.get('delivered', 0):,}); a process's "
                 "figure includes its children. 'machine' counts every busy core, other work on the machine included.")


def load_lines(summary: dict[str, Any]) -> list[str]:
    """Plain sentences: what the load did and, for a capacity search, the knee."""
    loc = summary.get("locust", {})
    lines = [f"Locust posted {loc.get('requests', 0):,} requests of {summary.get('batch')} events "
             f"({loc.get('failures', 0):,} failed) from {summary.get('processes', 1)} process(es)."]
    cap = summary.get("capacity")
    if cap:
        if cap.get("found"):
            lines.append(f"Capacity: the chain sustains {_num(cap['knee_events_per_s'])} events/s end to end within "
                         f"the SLA; {cap.get('limiting_note') or 'no CPU figures'}.")
        else:
            lines.append("Capacity: not even the first step held the SLA.")
    return lines


def load_section(run_dir: Path) -> LoadSection | None:
    """The load section of ``run_dir``, or None when the run had no load (no ``load/load.json``)."""
    folder = Path(run_dir) / LOAD_DIR
    path = folder / "load.json"
    if not path.is_file():
        return None
    summary = json.loads(path.read_text())
    requests, chain = _read(folder / "requests.parquet"), _read(folder / "chain.parquet")
    tables = [stage_table(summary)]
    tables += [t for t in (capacity_table(summary), cpu_table(summary)) if t is not None]
    return LoadSection(summary, [load_chart(summary, requests, chain)], tables, load_lines(summary))


def write_load_report(run_dir: Path) -> Path:
    """``report.html`` of a load run against a team's own gateway (no trace: the load section only)."""
    from reports.html import render_template

    run_dir = Path(run_dir)
    section = load_section(run_dir)
    if section is None:
        raise FileNotFoundError(f"{run_dir / LOAD_DIR / 'load.json'}: no load run here")
    passed = bool(section.summary.get("passed"))
    html = render_template("load.html.j2", title=f"Load on {section.summary.get('gateway')} — {run_dir.name}",
                           passed=passed, section=section)
    out = run_dir / "report.html"
    out.write_text(html, encoding="utf-8")
    return out
