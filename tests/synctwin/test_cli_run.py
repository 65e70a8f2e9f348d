"""``synctwin validate`` and ``synctwin run`` as a user calls them: exit codes and what they print."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from synctwin.cli import app

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios" / "library"
runner = CliRunner()


def test_every_library_scenario_validates():
    for path in sorted(LIBRARY.glob("*.yaml")):
        result = runner.invoke(app, ["validate", str(path)])
        assert result.exit_code == 0, (path.name, result.output)
        assert "valid" in result.output


def test_a_bad_scenario_exits_2_naming_path_value_and_fix(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\n"
        "run: {duration: 45 minutes}\n"
        "landscape:\n"
        "  erp: {kind: mainframe}\n"
        "  plants:\n"
        "    - {id: P01, cycle_tme: 30s}\n"
        "faults:\n"
        "  - {kind: wan_outage, at: 1h, duration: 10m, plants: [P09]}\n"
    )
    result = runner.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    text = result.output
    assert "run.duration" in text and "45 minutes" in text and "45m" in text
    assert "landscape.erp.kind" in text and "mainframe" in text and "legacy" in text
    assert "landscape.plants[0].cycle_tme: unknown key" in text


def test_unknown_plant_in_a_fault_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nlandscape: {plants: [{id: P01}]}\n"
                   "faults: [{kind: wan_outage, at: 1h, duration: 10m, plants: [P09]}]\n")
    result = runner.invoke(app, ["run", str(bad), "--quiet"])
    assert result.exit_code == 2
    assert "faults[0].plants: unknown plant 'P09'" in result.output


def test_missing_file_and_bad_override_exit_2(tmp_path):
    assert runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")]).exit_code == 2
    result = runner.invoke(app, ["run", str(LIBRARY / "baseline.yaml"), "--set", "run.seed"])
    assert result.exit_code == 2




@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
class TestRuns:
    def test_erp_outage_passes_and_the_backlog_builds_then_drains(self, tmp_path):
        out = tmp_path / "run"
        result = runner.invoke(app, ["run", str(LIBRARY / "erp-outage.yaml"), "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        assert "PASS" in result.output and str(out / "report.html") in result.output
        for name in ("scenario.yaml", "run.json", "trace.parquet", "ledger.parquet", "lots.parquet",
                     "sla.json", "report.html"):
            assert (out / name).is_file(), name
        trace = pd.read_parquet(out / "trace.parquet")
        erp = trace[trace.target.str.startswith("erp") & (trace.outcome == "delivered")]
        start, end = 4 * 3600, 4 * 3600 + 45 * 60
        in_flight_at = lambda t: ((erp.t_created <= t) & (erp.t_delivered > t)).sum()  # noqa: E731
        assert in_flight_at(start - 60) < 50 < in_flight_at(end - 60)  # built up during the outage
        assert in_flight_at(end + 3600) < 50  # and drained after it
        sla = json.loads((out / "sla.json").read_text())
        assert "lost" in json.dumps(sla) and "duplicate" in json.dumps(sla)
        ledger = pd.read_parquet(out / "ledger.parquet")
        assert ledger.txn_id.is_unique
        # Rebuilding the report from the files gives the same figures as at the end of the run.
        at_end = (out / "sla.json").read_text()
        (out / "sla.json").unlink()
        (out / "report.html").unlink()
        rebuilt = runner.invoke(app, ["report", str(out)])
        assert rebuilt.exit_code == 0, rebuilt.output
        assert json.loads((out / "sla.json").read_text()) == json.loads(at_end)
        assert (out / "report.html").is_file()

    def test_duplicate_storm_passes_and_fails_without_idempotency(self, tmp_path):
        storm = str(LIBRARY / "duplicate-storm.yaml")
        ok = runner.invoke(app, ["run", storm, "--out", str(tmp_path / "on"), "--quiet"])
        assert ok.exit_code == 0, ok.output
        off = runner.invoke(app, ["run", storm, "--out", str(tmp_path / "off"), "--quiet",
                                  "--set", "landscape.integration.idempotency=false"])
        assert off.exit_code == 1, off.output
        assert "duplicate" in off.output.lower() and "posted twice" in off.output
        ledger = pd.read_parquet(tmp_path / "off" / "ledger.parquet")
        assert not ledger.txn_id.is_unique

    def test_master_data_mismatch_dead_letters_with_reasons_and_loses_nothing(self, tmp_path):
        out = tmp_path / "run"
        result = runner.invoke(app, ["run", str(LIBRARY / "master-data-mismatch.yaml"), "--out", str(out),
                                     "--quiet"])
        assert result.exit_code == 1  # the DLQ limit of 0 is the onboarding gate
        assert "dead-letter" in result.output.lower()
        trace = pd.read_parquet(out / "trace.parquet")
        dlq = trace[trace.outcome == "dead_lettered"]
        assert set(dlq.plant) == {"MTY"}
        assert set(dlq.reason) == {"unmapped_item", "unknown_unit"}
        assert set(dlq[dlq.reason == "unmapped_item"].item) == {"MX-777"}
        assert set(dlq[dlq.reason == "unknown_unit"].unit) == {"LB"}
        rejected = trace[(trace.flow == "order_release") & (trace.outcome == "rejected")]
        assert len(rejected) > 0 and (rejected.line == "L03").all()
        sla = json.loads((out / "sla.json").read_text())
        invariants = json.dumps(sla["invariants"])
        assert '"lost"' in invariants
        report = (out / "report.html").read_text()
        assert "unmapped_item" in report and "unknown_unit" in report


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_compare_shows_which_slas_changed_and_by_how_much(tmp_path):
    waves = str(LIBRARY / "rollout-waves.yaml")
    short = ["--quiet", "--set", "run.duration=1d"]
    assert runner.invoke(app, ["run", waves, "--out", str(tmp_path / "a"), *short]).exit_code == 0
    slower = runner.invoke(app, ["run", waves, "--out", str(tmp_path / "b"), *short,
                                 "--set", "landscape.erp.service.mean=400ms"])
    assert slower.exit_code in (0, 1)
    result = runner.invoke(app, ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c")],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    a = json.loads((tmp_path / "a" / "sla.json").read_text())["slas"]["inventory_posting_delay"]["checks"][0]
    b = json.loads((tmp_path / "b" / "sla.json").read_text())["slas"]["inventory_posting_delay"]["checks"][0]
    assert b["value"] > a["value"]
    row = next(line for line in result.output.splitlines() if "Inventory posting delay p95" in line)
    assert "+" in row  # the delta is shown, signed
    assert (tmp_path / "c" / "compare.html").is_file()


EXPECTED_EXIT = re.compile(r"^# Expected: exits (\d)", re.MULTILINE)
# erp-outage, duplicate-storm, master-data-mismatch and fleet-week run in their own tests above and in
# tests/reports; live-smoke is a live-engine scenario (tests/live).
HEADER_CHECKED = ["baseline", "wan-outage", "shift-change-burst", "rollout-waves"]


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
@pytest.mark.parametrize("name", HEADER_CHECKED)
def test_library_scenario_exits_as_its_header_says(tmp_path, name):
    path = LIBRARY / f"{name}.yaml"
    expected = int(EXPECTED_EXIT.search(path.read_text()).group(1))
    result = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == expected, result.output
