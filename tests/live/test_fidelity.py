"""Fidelity of the virtual engine to the live one, end to end: the two-plant scenario
``scenarios/library/fidelity-outage.yaml`` runs live at speed 60 (real OPC UA, edges, gateway, JetStream,
worker and ERP twin) with an ERP outage; the virtual engine is calibrated from that run
(``synctwin calibrate``), run with the same seed and speed (``synctwin run --calibration --speed 60``)
and compared (``synctwin compare``). For every flow with at least 200 live postings the p95 posting delay
agrees within 10 % and the delivered counts within 2 %; the recovery after the outage agrees within 10 %.

The p50 is compared but not asserted: on a shared two-core machine it moved between -10 % and +15 % from
one live run to the next (the chain's processing at speed 60 follows the machine's load over the run;
figures in bench/RESULTS.md), so a single run cannot decide the 10 % bar for it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from live.stack import LiveStack, StackOptions
from scenarios.loader import load_scenario
from synctwin.cli import app

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "library" / "fidelity-outage.yaml"
SPEED = 60.0
MIN_SAMPLES = 200
BURST_START = 120.0  # scenario seconds: the material-issue burst the comparison rests on
runner = CliRunner()


def _fidelity(live: Path, virtual: Path) -> list[dict]:
    result = runner.invoke(app, ["compare", str(live), str(virtual)])
    assert result.exit_code == 0, result.output
    return json.loads((virtual / "fidelity.json").read_text())


@pytest.mark.slow
def test_the_virtual_engine_calibrated_from_a_live_run_predicts_it(tmp_path: Path):
    live = tmp_path / "live"
    # Process-hosted plants without OPC UA security start fastest; the warm-up is what a busy machine needs
    # (ten processes, 50-70 s at a load average of 15-25). Ray starts only afterwards, in `synctwin run`,
    # so its start-up does not compete with the stack's.
    options = StackOptions(speed=SPEED, progress=False, warmup=75.0, plant_host="process", insecure=True)
    LiveStack(load_scenario(SCENARIO), live, options).run()
    events = json.loads((live / "run.json").read_text())["events"]
    started = next(e["t"] for e in events if e["event"] == "all_started")
    assert started < BURST_START, f"start-up outlasted the warm-up: production began at {started:.0f} s"

    calibration = tmp_path / "calibration.yaml"
    result = runner.invoke(app, ["calibrate", str(live), "-o", str(calibration)])
    assert result.exit_code == 0, result.output
    virtual = tmp_path / "virtual"
    result = runner.invoke(app, ["run", str(SCENARIO), "--calibration", str(calibration), "--speed", str(SPEED),
                                 "--replications", "5", "--out", str(virtual), "--quiet"])
    assert result.exit_code in (0, 1), result.output
    assert "predicts that live run" in result.output

    rows = _fidelity(live, virtual)
    compared = [r for r in rows if r["samples"] >= MIN_SAMPLES and r["flow"] != "all postings"
                and r["figure"] in ("p95 delay (s)", "delivered")]
    assert {r["flow"] for r in compared} >= {"material_issue"}
    p50 = [r for r in rows if r["samples"] >= MIN_SAMPLES and r["figure"] == "p50 delay (s)"]
    assert p50 and all(r["rel_error"] is not None for r in p50)  # in the table, both engines measured
    for row in compared:
        bound = 0.02 if row["figure"] == "delivered" else 0.10
        assert abs(row["rel_error"]) <= bound, row
    recovery = [r for r in rows if r["figure"] == "recovery (s)" and r["flow"].startswith("erp_outage")]
    assert len(recovery) == 1 and recovery[0]["samples"] > 100  # postings queued during the outage
    assert abs(recovery[0]["rel_error"]) <= 0.10, recovery[0]
