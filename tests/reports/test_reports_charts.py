"""Load bursts on the report's clock charts: shaded on every time chart, a row on the timeline."""

from __future__ import annotations

from datetime import datetime

from matplotlib.figure import Figure

from kernel.run_record import burst_windows
from reports.charts import decorate, timeline_chart
from scenarios.spec import Scenario

START = datetime(2026, 1, 5, 6, 0)
BURST = {"at": "4h", "duration": "20m", "flow": "backflush", "rate": "25/s"}


def meta_with(bursts: list[dict]) -> dict:
    spec = Scenario.model_validate({"name": "b", "landscape": {"plants": [{"id": "P01"}]},
                                    "load": {"bursts": bursts}})
    return {"duration": 8 * 3600.0, "bursts": burst_windows(spec)}


def test_burst_windows_are_scenario_seconds():
    assert meta_with([BURST])["bursts"] == [
        {"flow": "backflush", "start": 14400.0, "end": 15600.0, "rate": 25.0, "plants": "all"}]


def test_a_burst_planned_after_the_run_ended_is_not_listed():
    spec = Scenario.model_validate({"name": "b", "run": {"duration": "3h"}, "landscape": {"plants": [{"id": "P01"}]},
                                    "load": {"bursts": [BURST]}})
    assert burst_windows(spec) == [] and len(burst_windows(spec, until=5 * 3600.0)) == 1


def test_a_burst_is_shaded_and_labelled_on_time_charts():
    ax = Figure().subplots()
    decorate(ax, meta_with([BURST, {**BURST, "at": "6h"}]), START, faults=[])
    labels = [p.get_label() for p in ax.patches]
    assert labels.count("load burst") == 1 and len(ax.patches) == 2  # one legend entry for both


def test_the_timeline_has_a_row_per_burst_even_without_faults():
    assert timeline_chart(meta_with([]), START, faults=[]) is None
    chart = timeline_chart(meta_with([BURST]), START, faults=[])
    assert chart is not None
    rows = [t.get_text() for t in chart.figure.axes[0].get_yticklabels()]
    assert rows == ["burst: backflush +25/s"]
    assert "burst: backflush +25/s" in chart.svg()
