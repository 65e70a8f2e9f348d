"""The report's charts, drawn with matplotlib's object API (``Figure``, Agg canvas, no pyplot).

Each chart is a :class:`Chart` holding the figure plus the metadata (title, axis labels with units)
that the HTML carries as ``data-*`` attributes, so tests and readers can check what a chart shows.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import matplotlib
import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator

from kernel.trace import FLOWS
from reports import palette
from reports.timeseries import Series

CLOCK_LABEL = "clock time (day hh:mm)"
WIDE = (10.0, 3.6)


@dataclass
class Chart:
    """One chart: the figure and what it shows."""

    id: str
    title: str
    xlabel: str
    ylabel: str
    figure: Figure | None  # None once drawn into ``rendered`` (a chart sent from another process)
    caption: str = ""
    rendered: str | None = None  # the SVG text, when already drawn

    def svg(self) -> str:
        """The chart as SVG text (text kept as text, so it stays searchable and small)."""
        if self.rendered is not None:
            return self.rendered
        buf = io.StringIO()
        with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": self.id}):
            self.figure.savefig(buf, format="svg")  # constrained layout already fits the labels
        # Keep the positions the layout engine found: later renders (the PDF) skip the layout passes.
        self.figure.set_layout_engine("none")
        return buf.getvalue()

    def drawn(self) -> Chart:
        """This chart as SVG text without its figure: small and cheap to send to another process."""
        return Chart(self.id, self.title, self.xlabel, self.ylabel, None, self.caption, self.svg())

    def data_uri(self) -> str:
        """The SVG as a ``data:`` URI for an ``<img>`` (no external asset, no id clashes)."""
        return "data:image/svg+xml;base64," + base64.b64encode(self.svg().encode()).decode()

    def meta(self) -> dict[str, str]:
        """Title and axis labels, for assertions and the HTML attributes."""
        return {"id": self.id, "title": self.title, "xlabel": self.xlabel, "ylabel": self.ylabel}


def to_clock(start: datetime, t: np.ndarray | float) -> np.ndarray:
    """Scenario seconds to matplotlib date numbers (days)."""
    return mdates.date2num(start) + np.asarray(t, dtype=float) / 86400.0


def _clock_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(True, alpha=0.3, linewidth=0.6)


def decorate(ax: Axes, meta: dict[str, Any], start: datetime, faults: list[dict[str, Any]],
             label: bool = True) -> None:
    """Shade fault windows and load bursts, and mark rollout waves, on a clock-time axis."""
    min_width = float(meta.get("duration", 0.0)) / 400.0  # keep short faults visible on long runs
    shaded = ((faults, palette.FAULT_SHADE, 0.12, "fault window"),
              (meta.get("bursts", []), palette.BURST_SHADE, 0.15, "load burst"))
    for windows, color, alpha, name in shaded:
        for i, w in enumerate(windows):
            a, b = to_clock(start, w["start"]), to_clock(start, max(w["end"], w["start"] + min_width))
            ax.axvspan(float(a), float(b), color=color, alpha=alpha, lw=0, label=name if label and i == 0 else None)
    for w in meta.get("waves", []):
        x = float(to_clock(start, float(w.get("at", 0.0))))
        ax.axvline(x, color=palette.WAVE_LINE, lw=1.0, ls="-.")
        ax.annotate(str(w.get("name", "")), (x, 1.0), xycoords=("data", "axes fraction"), fontsize=7,
                    color=palette.WAVE_LINE, rotation=90, va="top", ha="right")


_PLAIN = FuncFormatter(lambda v, _pos: f"{v:g}")


def _new(size: tuple[float, float] = WIDE, fixed: bool = False) -> Figure:
    """A figure; ``fixed``: fixed margins for one-axes charts whose labels are known (the constrained
    layout's passes cost more than drawing them)."""
    if not fixed:
        return Figure(figsize=size, layout="constrained")
    fig = Figure(figsize=size)
    width, height = size
    fig.subplots_adjust(left=1.0 / width, right=1 - 0.2 / width, top=1 - 0.4 / height, bottom=0.55 / height,
                        hspace=0.12)
    return fig


def latency_chart(s: Series, meta: dict[str, Any], start: datetime, faults: list[dict[str, Any]]) -> Chart | None:
    """Per-flow latency p50/p95/p99 over time, one panel per flow."""
    lat = s.latency
    flows = [f for f in FLOWS if f in set(lat["flow"])]
    if not flows:
        return None
    cols = 2 if len(flows) > 1 else 1
    rows = int(np.ceil(len(flows) / cols))
    height = 1.0 + 2.1 * rows
    # A fixed grid instead of constrained layout: on many panels the layout passes cost more than drawing.
    fig = Figure(figsize=(10.0, height))
    fig.subplots_adjust(left=0.08, right=0.98, top=1 - 0.9 / height, bottom=0.55 / height, hspace=0.35,
                        wspace=0.18)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    title = f"Latency per flow (p50 dotted, p95 solid, p99 dashed; {s.width / 60:.0f}-min buckets)"
    ylabel = "latency (s)"
    for ax, flow in zip(axes.flat, flows, strict=False):
        d = lat[lat["flow"] == flow]
        x = to_clock(start, d["bucket_t"].to_numpy() + s.width / 2)
        for stat, style in palette.PERCENTILE_STYLES.items():
            ax.plot(x, d[stat].to_numpy(), ls=style, color=palette.flow_color(flow), lw=1.3, label=stat)
        positive = d[["p50", "p95", "p99"]].to_numpy()
        positive = positive[positive > 0]
        if positive.size and positive.max() / max(positive.min(), 1e-3) > 50:
            ax.set_yscale("log")
            ax.yaxis.set_minor_locator(NullLocator())  # minor log ticks cost seconds on many panels
            ax.yaxis.set_major_formatter(_PLAIN)  # "100", not mathtext "10^2": parsing it was a tenth of the report
        else:
            ax.ticklabel_format(axis="y", useOffset=False, style="plain")  # no "1e-11+4.5e-2" offsets
            ax.set_ylim(bottom=0)
        ax.set_title(flow.replace("_", " "), fontsize=9, color=palette.flow_color(flow), loc="left")
        ax.set_ylabel(ylabel, fontsize=8)
        decorate(ax, meta, start, faults, label=False)
        _clock_axis(ax)
    for ax in axes.flat[len(flows):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(CLOCK_LABEL, fontsize=8)
    fig.suptitle(title, fontsize=11)
    return Chart("latency", title, CLOCK_LABEL, ylabel, fig,
                 "Fault windows shaded; rollout waves marked with dash-dot lines. Latency: MES ack for order "
                 "release, target delivery for the other flows.")


def backlog_chart(s: Series, meta: dict[str, Any], start: datetime, faults: list[dict[str, Any]]) -> Chart:
    """Queue depth per stage over time."""
    fig = _new(fixed=True)
    ax = fig.subplots()
    x = to_clock(start, s.grid)
    names = {"edge": "edge (created → broker)", "integration": "integration (broker → delivered)",
             "erp_postings": "ERP postings not yet posted"}
    for stage, values in s.stage_backlog.items():
        ax.plot(x, values, color=palette.STAGE_COLORS[stage], lw=1.4, label=names[stage],
                ls="--" if stage == "erp_postings" else "-")
    decorate(ax, meta, start, faults)
    _clock_axis(ax)
    title = "Backlog per stage"
    ylabel = "transactions waiting (count)"
    ax.set(title=title, xlabel=CLOCK_LABEL, ylabel=ylabel)
    legend(ax, fontsize=8, loc="upper right")
    return Chart("backlog", title, CLOCK_LABEL, ylabel, fig,
                 "Sampled every {:.0f} s; means over replications.".format(s.grid[1] - s.grid[0]
                                                                           if s.grid.size > 1 else 0))


_BREAKER_LEVEL = {"closed": 0.0, "half_open": 0.5, "open": 1.0}


def retries_chart(s: Series, meta: dict[str, Any], start: datetime, faults: list[dict[str, Any]]) -> Chart:
    """Retries and dead letters per bucket, with the circuit-breaker state underneath."""
    fig = _new((10.0, 4.6), fixed=True)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.3))
    r = s.retries
    x = to_clock(start, r["bucket_t"].to_numpy())
    edges = np.append(x, x[-1] + s.width / 86400.0) if x.size else np.zeros(1)
    # One filled step patch per series draws like contiguous bars at a fraction of the cost of one
    # rectangle artist per bucket (the bars were a third of the report's fixed chart time).
    top.stairs(r["retries"].to_numpy(), edges, fill=True, color=palette.STAGE_COLORS["integration"],
               label="retries")
    top.stairs(r["dead_letters"].to_numpy(), edges, fill=True, color=palette.FAIL_COLOR, label="dead letters")
    decorate(top, meta, start, faults)
    title = f"Retries and circuit breaker ({s.width / 60:.0f}-min buckets)"
    ylabel = "retries per bucket (count)"
    top.set(title=title, ylabel=ylabel)
    legend(top, fontsize=8, loc="upper right")
    _clock_axis(top)
    targets = sorted({str(b.get("target")) for b in s.breaker if b.get("replication", 0) == 0})
    for i, target in enumerate(targets):
        ev = sorted((float(b["t"]), str(b["state"])) for b in s.breaker
                    if b.get("replication", 0) == 0 and str(b.get("target")) == target)
        times = [0.0] + [t for t, _ in ev] + [float(meta["duration"])]
        levels = [0.0] + [_BREAKER_LEVEL.get(state, 0.0) for _, state in ev]
        levels.append(levels[-1])
        bottom.step(to_clock(start, np.asarray(times)), np.asarray(levels) + i * 1.5, where="post", lw=1.4,
                    color=palette.BREAKER_COLORS["open"], label=target)
    bottom.set_yticks([0, 0.5, 1.0], ["closed", "half-open", "open"], fontsize=7)
    bottom.set(ylabel="breaker (state)", xlabel=CLOCK_LABEL)
    if targets:
        legend(bottom, fontsize=7, loc="upper right")
    decorate(bottom, meta, start, faults, label=False)
    _clock_axis(bottom)
    return Chart("retries", title, CLOCK_LABEL, ylabel, fig, "Breaker state of replication 0 per target.")


def erp_load_chart(s: Series, meta: dict[str, Any], start: datetime, faults: list[dict[str, Any]]) -> Chart:
    """ERP postings per second per ERP over time."""
    fig = _new(fixed=True)
    ax = fig.subplots()
    for i, (erp, d) in enumerate(s.erp_load.groupby("erp", sort=True)):
        ax.plot(to_clock(start, d["bucket_t"].to_numpy() + s.width / 2), d["per_s"].to_numpy(), lw=1.4,
                color=palette.RUN_COLORS[i % 2] if i < 2 else palette.flow_color(FLOWS[i]), label=str(erp))
    decorate(ax, meta, start, faults)
    _clock_axis(ax)
    title = f"ERP load ({s.width / 60:.0f}-min buckets)"
    ylabel = "postings per second (1/s)"
    ax.set(title=title, xlabel=CLOCK_LABEL, ylabel=ylabel)
    legend(ax, fontsize=8, loc="upper right")
    return Chart("erp_load", title, CLOCK_LABEL, ylabel, fig)


def plant_chart(per_plant: list[dict[str, Any]]) -> Chart | None:
    """Posting delay p95 per plant (bars), in each plant's colour."""
    rows = [r for r in per_plant if r.get("posting_p95") is not None]
    if not rows:
        return None
    plants = [r["plant"] for r in rows]
    fig = _new((10.0, 3.2))
    ax = fig.subplots()
    ax.bar(plants, [r["posting_p95"] for r in rows], color=[palette.plant_color(p, plants) for p in plants])
    title = "Inventory posting delay p95 per plant"
    xlabel, ylabel = "plant (id)", "p95 posting delay (s)"
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    if len(plants) > 12:
        ax.tick_params(axis="x", labelrotation=90, labelsize=7)
    return Chart("plants", title, xlabel, ylabel, fig)


def timeline_chart(meta: dict[str, Any], start: datetime, faults: list[dict[str, Any]]) -> Chart | None:
    """Fault windows, load bursts, breaker openings and rollout waves on one clock axis (QA view)."""
    bursts = meta.get("bursts", [])
    if not faults and not bursts and not meta.get("waves") and not meta.get("breaker"):
        return None
    fig = _new((10.0, 1.2 + 0.35 * (len(faults) + len(bursts) + 2)))
    ax = fig.subplots()
    labels = []
    windows = [(f, palette.FAULT_SHADE, str(f.get("kind", "fault")).replace("_", " ")) for f in faults]
    windows += [(b, palette.BURST_SHADE, f"burst: {b['flow'].replace('_', ' ')} +{b['rate']:g}/s") for b in bursts]
    for i, (w, color, text) in enumerate(windows):
        a = float(to_clock(start, w["start"]))
        b = float(to_clock(start, max(w["end"], w["start"] + 60.0)))
        ax.broken_barh([(a, b - a)], (i - 0.35, 0.7), color=color, alpha=0.8)
        labels.append(text)
    row = len(windows)
    opens = [b for b in meta.get("breaker", []) if b.get("replication", 0) == 0]
    if opens:
        for state, color in palette.BREAKER_COLORS.items():
            ts = [float(to_clock(start, float(b["t"]))) for b in opens if b.get("state") == state]
            ax.scatter(ts, [row] * len(ts), marker="|", s=120, color=color, label=f"breaker {state}")
        labels.append("circuit breaker")
        row += 1
    waves = meta.get("waves", [])
    if waves:
        ts = [float(to_clock(start, float(w.get("at", 0.0)))) for w in waves]
        ax.scatter(ts, [row] * len(ts), marker="D", color=palette.WAVE_LINE, label="rollout wave")
        for t, w in zip(ts, waves, strict=True):
            ax.annotate(str(w.get("name", "")), (t, row), xytext=(4, 4), textcoords="offset points", fontsize=7)
        labels.append("rollout waves")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(-0.8, len(labels) - 0.2)
    ax.set_xlim(float(to_clock(start, 0.0)), float(to_clock(start, float(meta["duration"]))))
    _clock_axis(ax)
    title = "Fault timeline"
    ylabel = "event (kind)"
    ax.set(title=title, xlabel=CLOCK_LABEL, ylabel=ylabel)
    if opens or waves:
        legend(ax, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return Chart("timeline", title, CLOCK_LABEL, ylabel, fig)


def run_charts(s: Series, sla: dict[str, Any], meta: dict[str, Any], start: datetime) -> list[Chart]:
    """All charts of a run report, in reading order."""
    return in_reading_order(series_charts(s, meta, start, sla["faults"]), plant_chart(sla["per_plant"]))


def series_charts(s: Series, meta: dict[str, Any], start: datetime,
                  faults: list[dict[str, Any]]) -> list[Chart | None]:
    """The charts that need only the series and the fault windows (not the SLA figures): latency,
    backlog, retries, ERP load and the timeline; ``None`` for a chart with nothing to show."""
    return [latency_chart(s, meta, start, faults), backlog_chart(s, meta, start, faults),
            retries_chart(s, meta, start, faults), erp_load_chart(s, meta, start, faults),
            timeline_chart(meta, start, faults)]


def in_reading_order(from_series: list[Chart | None], plants: Chart | None) -> list[Chart]:
    """:func:`series_charts` and the per-plant chart in the report's order."""
    charts = [*from_series[:4], plants, *from_series[4:]]
    return [c for c in charts if c is not None]


def legend(ax: Axes, **options: Any) -> None:
    """A legend when the axes have labelled artists (an empty run draws none, without a warning)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**options)
