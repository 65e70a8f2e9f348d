"""``synctwin load`` against the embedded chain: a short step ramp, its statistics in the run folder
(Locust's CSV, Parquet) and in the report beside the chain's backlog and end-to-end latency."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from live.procs import pid_alive
from tests.polling import poll

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "loadtest" / "scenarios" / "gateway-capacity.yaml"


def synctwin(*args: str, timeout: float = 150.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "synctwin.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_step_ramp_against_the_embedded_chain_lands_in_the_run_folder_and_report(tmp_path: Path):
    run_dir = tmp_path / "ramp"
    done = synctwin("load", str(SCENARIO), "--shape", "step-ramp", "--rate", "200", "--max-rate", "600",
                    "--steps", "3", "--duration", "12s", "--batch", "50", "--out", str(run_dir), "--no-progress")
    assert done.returncode == 0, done.stdout + done.stderr

    load = run_dir / "load"
    history = pd.read_csv(load / "locust_stats_history.csv")  # Locust's own CSV writer
    assert history[history["Name"] == "Aggregated"]["Total Request Count"].max() > 10
    requests = pd.read_parquet(load / "requests.parquet")
    assert {"t", "Requests/s", "99%", "events_per_s", "User Count"} <= set(requests.columns)
    assert requests["User Count"].max() > requests[requests["t"] > 1.0]["User Count"].min()  # it ramped
    chain = pd.read_parquet(load / "chain.parquet")
    assert chain["e2e_p99_s"].notna().sum() >= 5 and chain["backlog"].notna().all()
    assert {"cpu_gateway", "cpu_worker", "cpu_broker"} <= set(chain.columns)

    summary = json.loads((load / "load.json").read_text())
    assert [s["target_events_per_s"] for s in summary["stages"]] == [200.0, 400.0, 600.0]
    assert all(s["holds"] and s["delivered_events_per_s"] > 0 for s in summary["stages"])
    accepted = summary["locust"]["events_accepted"]

    sla = json.loads((run_dir / "sla.json").read_text())  # the run folder is evaluated like any live run
    assert sla["invariants"]["lost"]["count"] == 0 and sla["invariants"]["duplicates_posted"]["count"] == 0
    ledger = pd.read_parquet(run_dir / "ledger.parquet")
    assert len(ledger) == accepted == ledger["txn_id"].nunique()  # every accepted event posted once
    html = (run_dir / "report.html").read_text()
    assert 'data-chart-id="load"' in html and "Load stages" in html and "Locust posted" in html

    pids = [p for s in json.loads((run_dir / "run.json").read_text())["services"].values() for p in s["pids"]]
    assert pids
    poll(lambda: not any(pid_alive(p) for p in pids), 20.0, 0.1, "processes of the load run left running")


def test_bad_input_exits_2_naming_the_option(tmp_path: Path):
    from typer.testing import CliRunner

    from synctwin.cli import app

    bad = [
        (["--gateway", "http://10.1.2.3:8000", "--api-key", "k"], "--gateway"),
        (["--gateway", "http://127.0.0.1:8000"], "--api-key"),
        (["--shape", "sawtooth"], "--shape"),
        (["--duration", "-5s"], "--duration"),
        (["--processes", "0"], "--processes"),
        (["--nats", "nats://127.0.0.1:4222"], "only with --gateway"),
        (["--find-capacity", "--rate", "5000", "--max-rate", "1000"], "--max-rate"),
        (["--gateway", "http://127.0.0.1:8000", "--api-key", "k", "--worker-run-dir", str(tmp_path)], "--epoch"),
    ]
    for extra, needle in bad:
        done = CliRunner().invoke(app, ["load", str(SCENARIO), "--out", str(tmp_path / "x"), *extra])
        assert done.exit_code == 2, (extra, done.output)
        assert needle in done.output, (extra, done.output)
        assert not (tmp_path / "x").exists()
