"""The report's load section from a synthetic ``RUN_DIR/load`` (no processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from loadtest.verdict import knee
from reports.load import load_section, write_load_report


def _stage(label: str, rate: float, delivered: float, holds: bool) -> dict:
    return {"label": label, "target_events_per_s": rate, "start_s": 0.0, "end_s": 10.0,
            "accepted_events_per_s": delivered, "delivered_events_per_s": delivered, "requests": 100, "failures": 0,
            "error_share": 0.0, "e2e_p50_s": 0.1, "e2e_p99_s": 0.3 if holds else 2.5, "backlog_start": 0,
            "backlog_end": 0 if holds else 9000, "cpu_cores": {"gateway": 0.4, "worker": 0.8, "machine": 1.9},
            "holds": holds, "reasons": [] if holds else ["p99 end to end 2.50 s > SLA 1 s"]}


def _write(run_dir: Path, summary: dict) -> None:
    load = run_dir / "load"
    load.mkdir(parents=True)
    (load / "load.json").write_text(json.dumps(summary))
    t = [float(i) for i in range(20)]
    pd.DataFrame({"t": t, "Requests/s": 5.0, "Failures/s": 0.0, "50%": 30.0, "95%": 60.0, "99%": 90.0,
                  "events_per_s": 1000.0}).to_parquet(load / "requests.parquet")
    pd.DataFrame({"t": t, "backlog": 10.0, "delivered": 1000.0, "e2e_p50_s": 0.1, "e2e_p99_s": 0.3}).to_parquet(
        load / "chain.parquet")


def test_a_capacity_search_gives_a_chart_on_one_axis_and_the_knee_with_its_limit(tmp_path: Path):
    stages = [_stage("step 1", 1000.0, 1000.0, True), _stage("step 2", 2000.0, 1400.0, False)]
    summary = {"gateway": "http://127.0.0.1:1", "plan": [{"duration": 10, "rate": 1000}, {"duration": 10, "rate": 2000},
                                                          {"duration": 10, "rate": 3000}],
               "stages": stages, "stopped_at": "step 2", "capacity": knee(stages, cores=2), "sla_p99_s": 1.0,
               "max_error_share": 0.01, "batch": 200, "processes": 2, "locust": {"requests": 200, "failures": 0},
               "cpu_us_per_event": {"gateway": 20.0, "worker": 40.0, "load generator": 5.0},
               "cpu_seconds": {"gateway": 0.4, "worker": 0.8}, "delivered": 20000, "passed": True}
    _write(tmp_path, summary)
    section = load_section(tmp_path)
    assert section is not None
    (chart,) = section.charts
    assert chart.id == "load" and len(chart.figure.axes) >= 4
    assert all(ax.get_shared_x_axes().joined(chart.figure.axes[0], ax) for ax in chart.figure.axes[:4])
    titles = [t.title for t in section.tables]
    assert titles == ["Load stages", "Capacity search", "CPU per event"]
    capacity = {row[0]: row for row in section.tables[1].rows}
    assert capacity["limiting component"][1] == "worker"
    assert "1,000 events/s" in capacity["knee (highest sustained, delivered)"][1]
    chain_row = section.tables[2].rows[-1]
    assert chain_row[-1] == "60.0"  # gateway + worker, without the load generator
    html = write_load_report(tmp_path).read_text()
    assert 'data-chart-id="load"' in html and "PASS" in html and "Capacity search" in html


def test_a_run_without_load_has_no_load_section(tmp_path: Path):
    assert load_section(tmp_path) is None
