"""``synctwin load --gateway URL``: a chain a team started itself (each service prints READY)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from integration.gateway.settings import generate_credentials
from live.procs import ServiceSet

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "loadtest" / "scenarios" / "gateway-capacity.yaml"


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "synctwin.cli", *args]


@pytest.mark.slow
def test_load_against_a_separately_started_gateway(tmp_path: Path):
    team = tmp_path / "team"
    (team / "state").mkdir(parents=True)
    creds = generate_credentials(["P01", "P02", "P03", "P04"])
    (team / "credentials.json").write_text(json.dumps(creds))
    epoch = repr(time.time())
    clock = ["--epoch", epoch, "--speed", "1"]
    with ServiceSet(team / "logs") as services:
        services.start_many({
            "broker": cli("broker", "--data-dir", str(team / "nats")),
            "erp": cli("erp", "--scenario", str(SCENARIO), "--db", str(team / "state" / "erp-legacy.sqlite"), *clock),
        })
        nats = services["broker"].url
        services.start_many({
            "gateway": cli("gateway", "--nats", nats, "--credentials", str(team / "credentials.json"), *clock),
            "worker": cli("worker", "--nats", nats, "--scenario", str(SCENARIO), "--erp",
                          f"legacy={services['erp'].url}", "--run-dir", str(team), *clock),
        })
        gateway = services["gateway"].url
        run_dir = tmp_path / "load"
        done = subprocess.run(cli("load", str(SCENARIO), "--gateway", gateway, "--api-key", creds["plants"]["P01"],
                                  "--api-key", creds["plants"]["P02"], "--nats", nats, "--worker-run-dir", str(team),
                                  "--epoch", epoch, "--speed", "1", "--rate", "400", "--duration", "6s",
                                  "--processes", "2", "--out", str(run_dir), "--no-progress"),
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert services["gateway"].alive() and services["worker"].alive()  # the team's chain is left running

    summary = json.loads((run_dir / "load" / "load.json").read_text())
    assert summary["mode"] == "external" and summary["gateway"] == gateway
    assert summary["processes"] == 2 and summary["locust"]["requests"] > 0  # a master and two Locust workers
    stage = summary["stages"][0]
    assert stage["holds"] and stage["accepted_events_per_s"] > 200 and stage["e2e_p99_s"] < 1.0
    assert (run_dir / "load" / "locust_stats_history.csv").is_file()
    requests = pd.read_parquet(run_dir / "load" / "requests.parquet")
    assert requests["events_per_s"].max() > 0
    chain = pd.read_parquet(run_dir / "load" / "chain.parquet")
    assert chain["backlog"].notna().any() and chain["e2e_p99_s"].notna().any()
    assert "cpu_gateway" not in chain.columns  # a team's processes are not ours to measure
    html = (run_dir / "report.html").read_text()
    assert 'data-chart-id="load"' in html and "Load stages" in html
