"""Negative controls: the library's experiments must fail when the layer really breaks. The same scenario with
idempotency off and P02's edge buffer of 20 events dropping the oldest: the redelivery storm posts copies
twice, the ERP's lost answers are posted again (no ledger lookup without idempotency) and the WAN cut drops
events, so `synctwin chaos` exits 1 naming the duplicated and the lost ids."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from synctwin.cli import app

pytestmark = pytest.mark.slow
LIBRARY = Path(__file__).resolve().parents[2] / "scenarios" / "chaos"


def _broken_copy(tmp_path: Path) -> Path:
    scenario = yaml.safe_load((LIBRARY / "scenarios" / "two-plants.yaml").read_text())
    scenario["landscape"]["integration"]["idempotency"] = False
    p02 = next(p for p in scenario["landscape"]["plants"] if p["id"] == "P02")
    p02["edge"] = {"buffer": 20, "overflow": "drop_oldest"}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return path


def _experiment(tmp_path: Path, stem: str, scenario: Path, keep: str, only_new: bool = False) -> Path:
    """The library experiment on ``scenario``, its hypothesis narrowed to the probe ``keep`` (the one thing
    this control breaks, so the other control's damage does not stop its method from running); with
    ``only_new`` that duplicates probe counts only the copies posted since this experiment began."""
    data = yaml.safe_load((LIBRARY / f"{stem}.yaml").read_text())
    data["configuration"]["synctwin_scenario"] = str(scenario)
    probes = data["steady-state-hypothesis"]["probes"]
    data["steady-state-hypothesis"]["probes"] = [p for p in probes if p["name"] == keep]
    if only_new:
        probe = data["steady-state-hypothesis"]["probes"][0]
        probe["provider"]["func"], probe["tolerance"] = "new_duplicate_ids", [[]]
    path = tmp_path / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_idempotency_off_and_a_dropping_edge_buffer_fail_naming_the_ids(tmp_path: Path):
    scenario = _broken_copy(tmp_path)
    experiments = [_experiment(tmp_path, "redelivery-storm", scenario, keep="nothing-posted-twice"),
                   _experiment(tmp_path, "erp-lost-answer", scenario, keep="nothing-posted-twice", only_new=True),
                   _experiment(tmp_path, "wan-cut", scenario, keep="nothing-lost")]
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(app, ["chaos", *map(str, experiments), "--out", str(run_dir),
                                      "--pause-scale", "0.5"])
    assert result.exit_code == 1, result.output
    sla = json.loads((run_dir / "sla.json").read_text())
    duplicated, lost = sla["invariants"]["duplicates_posted"], sla["invariants"]["lost"]
    assert duplicated["count"] > 0 and lost["count"] > 0 and lost["edge_dropped"] > 0
    lines = [line for line in result.output.splitlines() if line.startswith("FAILED invariant")]
    assert any(line.startswith("FAILED invariant duplicates_posted") and duplicated["ids"][0] in line
               for line in lines), result.output
    assert any(line.startswith("FAILED invariant lost") and lost["ids"][0] in line for line in lines), result.output
    assert "redelivery-storm: steady-state hypothesis after the method: nothing-posted-twice" in result.output
    assert "wan-cut: steady-state hypothesis after the method: nothing-lost" in result.output
    # The lost answers: posted twice although the worker saw one failed request per batch (one delivered copy).
    lost_answer = next(line for line in result.output.splitlines()
                       if line.startswith("FAILED erp-lost-answer: steady-state hypothesis after the method"))
    ledger = pd.read_parquet(run_dir / "ledger.parquet")
    trace = pd.read_parquet(run_dir / "trace.parquet")
    posted = ledger["txn_id"].value_counts()
    copies = trace[trace["outcome"] == "delivered"]["txn_id"].value_counts()
    reposted = [t for t in posted[posted > 1].index if copies.get(t, 0) == 1]
    assert reposted and all(t in lost_answer for t in reposted[:5]), lost_answer
