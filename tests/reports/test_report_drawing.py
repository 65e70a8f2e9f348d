"""Charts drawn in the second process are the charts drawn in the report's own process."""

from __future__ import annotations

import re

from reports import backlog as bl
from reports.charts import plant_chart, series_charts
from reports.drawing import ChartDrawer, result
from reports.evaluate import evaluate_prepared
from reports.prep import prepare
from reports.runfolder import load_run
from reports.timeseries import build_series


def _svg(chart) -> str:
    return re.sub(r"<dc:date>.*?</dc:date>", "", chart.svg())  # matplotlib stamps the drawing time


def test_the_drawing_process_returns_the_same_svgs_as_drawing_here(faulty_run):
    run = load_run(faulty_run[0])
    prep = prepare(run)
    series, faults = build_series(prep), bl.fault_windows(run.meta)
    per_plant = evaluate_prepared(prep)["per_plant"]
    here = [*series_charts(series, run.meta, run.start_clock, faults), plant_chart(per_plant)]
    with ChartDrawer(parallel=True) as drawer:
        drawn = [*result(drawer.series(series, run.meta, run.start_clock, faults), lambda: None),
                 result(drawer.plants(per_plant), lambda: None)]
    assert [c is None for c in drawn] == [c is None for c in here] and any(c is not None for c in here)
    for mine, theirs in zip(here, drawn, strict=True):
        if mine is not None:
            assert theirs.figure is None and theirs.meta() == mine.meta() and theirs.caption == mine.caption
            assert _svg(theirs) == _svg(mine)


def test_a_failed_drawing_process_falls_back_to_drawing_here(faulty_run):
    run = load_run(faulty_run[0])
    with ChartDrawer(parallel=True) as drawer:
        drawer._proc.kill()  # the helper dies before it answers
        charts = result(drawer.plants([{"plant": "P01", "posting_p95": 3.0}]),
                        lambda: plant_chart([{"plant": "P01", "posting_p95": 3.0}]))
    assert charts is not None and charts.id == "plants" and run.meta
