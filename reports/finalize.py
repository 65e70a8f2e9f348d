"""``finalize_run``: evaluate a run folder and write ``sla.json``, ``report.html`` (and ``report.pdf``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reports import backlog as bl
from reports.chaos import chaos_section
from reports.charts import Chart, in_reading_order, plant_chart, series_charts
from reports.drawing import PARALLEL_FROM_ROWS, ChartDrawer, result
from reports.evaluate import evaluate_prepared
from reports.html import render_report
from reports.load import load_section
from reports.prep import prepare
from reports.runfolder import load_run
from reports.timeseries import build_series
from reports.view import build_view


@dataclass
class RunVerdict:
    """The outcome of a run: pass/fail, one line per breach, and the full sla.json content."""

    passed: bool
    breaches: list[str]
    sla: dict[str, Any]


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as indented JSON (NaN-free by construction; fails loudly otherwise)."""
    path.write_text(json.dumps(data, indent=2, allow_nan=False, default=str) + "\n")


def finalize_run(run_dir: Path, pdf: bool = False) -> RunVerdict:
    """Evaluate ``run_dir`` and write its report files; raises ``RunFolderError`` on bad input."""
    run_dir = Path(run_dir)
    run = load_run(run_dir)
    # The charts are drawn beside the evaluation (a second process on big runs; the PDF needs the figures).
    with ChartDrawer(parallel=not pdf and len(run.trace) >= PARALLEL_FROM_ROWS) as drawer:
        prep = prepare(run)
        series = build_series(prep)
        faults = bl.fault_windows(run.meta)  # the windows of sla["faults"], known before the evaluation
        from_series = drawer.series(series, run.meta, run.start_clock, faults)
        sla = evaluate_prepared(prep)
        write_json(run_dir / "sla.json", sla)
        view = build_view(sla)
        plants = drawer.plants(sla["per_plant"])
        charts: list[Chart] = in_reading_order(
            result(from_series, lambda: series_charts(series, run.meta, run.start_clock, faults)),
            result(plants, lambda: plant_chart(sla["per_plant"])))
    load = load_section(run_dir)  # a `synctwin load` run: Locust's statistics beside the chain's
    if load is not None:
        charts += load.charts
        view.tables += load.tables
        view.verdicts += [("neutral", line) for line in load.lines]
    chaos = chaos_section(run_dir, sla)  # a `synctwin chaos` run: hypothesis, activities, recovery per fault
    if chaos is not None:
        view.tables = chaos.tables + view.tables
        view.verdicts += chaos.lines
    (run_dir / "report.html").write_text(render_report(view, charts, run.scenario_text), encoding="utf-8")
    if pdf:
        from reports.pdf import write_pdf  # only runs that ask for a PDF pay for the PDF backend

        write_pdf(run_dir / "report.pdf", view, charts, run.scenario_text)
    return RunVerdict(passed=bool(sla["passed"]), breaches=list(sla["breaches"]), sla=sla)
