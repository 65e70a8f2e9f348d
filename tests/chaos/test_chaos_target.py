"""``synctwin chaos --target``: an experiment against services started on their own (``synctwin broker``,
``gateway``, ``erp``, as a team would start theirs); what needs a stack synctwin started is refused first."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from integration.gateway.settings import generate_credentials
from live.procs import ServiceSet
from synctwin.cli import app

pytestmark = pytest.mark.slow
LIBRARY = Path(__file__).resolve().parents[2] / "scenarios" / "chaos"


def _service(*args: str) -> list[str]:
    return [sys.executable, "-m", "synctwin.cli", *args]


def test_target_runs_an_api_only_experiment_and_refuses_kills_before_starting(tmp_path: Path):
    creds = tmp_path / "credentials.json"
    creds.write_text(json.dumps(generate_credentials(["P01"])))
    scenario = LIBRARY / "scenarios" / "two-plants.yaml"
    with ServiceSet(tmp_path / "logs") as services:
        services.start_many({"broker": _service("broker", "--data-dir", str(tmp_path / "nats")),
                             "erp": _service("erp", "--scenario", str(scenario), "--db", str(tmp_path / "erp.db"),
                                             "--epoch", str(time.time()))})
        gateway = services.start("gateway", _service("gateway", "--nats", services["broker"].url, "--credentials",
                                                     str(creds))).url
        erp = services["erp"].url
        target = f"gateway={gateway},erp={erp}"
        refused = CliRunner().invoke(app, ["chaos", str(LIBRARY / "kill-worker.yaml"), "--target", target,
                                           "--out", str(tmp_path / "refused")])
        assert refused.exit_code == 2
        assert "method[0] (kill-worker): kill_process needs a stack synctwin started" in refused.output
        assert not (tmp_path / "refused").exists()  # refused before anything started

        result = CliRunner().invoke(app, ["chaos", str(LIBRARY / "target-erp-storm.yaml"), "--target", target,
                                          "--out", str(tmp_path / "run")])
        assert result.exit_code == 0, result.output
        journal = json.loads((tmp_path / "run" / "journal.json").read_text())
        assert [r["status"] for r in journal["run"]] == ["succeeded"] * 5
        assert [r["output"]["mode"] for r in journal["run"] if r["activity"]["type"] == "probe"] == [
            "throttle", "errors"]
        assert httpx.get(f"{erp}/admin/mode").json()["mode"] == "normal"

        # a transaction the team's ERP holds twice: the ledger check names it and the verdict is 1
        for _ in range(2):
            httpx.post(f"{erp}/postings", json={"txn_id": "T-TWICE", "flow": "goods_receipt", "plant": "P01",
                                                "item": "FG-100", "qty": 1, "unit": "EA", "t_created": 0})
        again = CliRunner().invoke(app, ["chaos", str(LIBRARY / "target-erp-storm.yaml"), "--target", target,
                                         "--out", str(tmp_path / "again")])
        assert again.exit_code == 1 and "FAILED invariant duplicates_posted: 1 (T-TWICE)" in again.output
