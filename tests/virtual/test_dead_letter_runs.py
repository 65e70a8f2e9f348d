"""Runs whose every posting is dead-lettered still write their run folder and name the reasons."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from kernel import trace
from scenarios.generator import FaultPlan, Vocabulary
from scenarios.loader import parse_scenario
from synctwin.cli import app
from virtual import batch as B
from virtual.hub import IntegrationHub

runner = CliRunner()

RUN_FILES = ("scenario.yaml", "run.json", "trace.parquet", "ledger.parquet", "lots.parquet", "sla.json",
             "report.html")


def _scenario(**landscape) -> dict:
    return {
        "name": "all-dead",
        "run": {"duration": "2h", "seed": 3, "window": "30m"},
        "landscape": {"items": {"FG-100": {"unit": "EA"}, "RM-10": {"unit": "KG"}},
                      "plants": [{"id": "NEW", "lines": 1, "machines_per_line": 2,
                                  **landscape.pop("plant", {})}], **landscape},
        "load": {"orders": 0},
        "slas": {"inventory_posting_delay": {"p95": "30s"}, "dlq": {"max_count": 0}},
    }


def _hub_step_dead_only(scenario_data: dict) -> None:
    scenario = parse_scenario(scenario_data)
    vocab = Vocabulary.of(scenario)
    hub = IntegrationHub(scenario, vocab, FaultPlan.of(scenario), np.random.default_rng(0))
    t = np.array([10.0, 20.0, 30.0])
    rows = B.make(3, B.SOURCE_COLUMNS, seq=np.arange(3), flow=B.FLOW_CODE[trace.OPERATION_CONFIRMATION],
                  item=vocab.item("LOC-1"), qty=1.0, unit=vocab.unit("PZA"), t_created=t, t_edge=t, t_broker=t)
    first = hub.step(1800.0, [(0, rows)])  # an empty pool and every message dead: the pool keeps its columns
    assert (first["outcome"] == B.OUTCOME_CODE[trace.DEAD_LETTERED]).all()
    assert "t_arrive" in hub.pool
    assert B.size(hub.step(3600.0, [])) == 0
    assert B.size(hub.finish()) == 0


def test_a_window_where_every_message_is_dead_lettered_keeps_the_hub_usable():
    _hub_step_dead_only(_scenario(plant={"products": ["LOC-1"], "unit": "PZA"}))


def test_concat_of_empty_batches_keeps_their_columns():
    pool = B.empty(B.ALL_COLUMNS | {"t_arrive": np.float64})
    merged = B.concat([pool, B.take(pool, np.zeros(0, dtype=int))])
    assert "t_arrive" in merged and merged["t_arrive"].dtype == np.float64
    assert set(B.concat([], B.SOURCE_COLUMNS)) == set(B.SOURCE_COLUMNS)


def _run(tmp_path, data: dict):
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(path), "--out", str(out), "--quiet"])
    return result, out


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
class TestEveryPostingDeadLettered:
    def test_a_plant_with_only_unmapped_codes(self, tmp_path):
        data = _scenario(plant={"products": ["LOC-1"], "unit": "PZA", "component_unit": "LB"})
        result, out = _run(tmp_path, data)
        assert result.exit_code == 1, result.output  # the DLQ limit of 0 is breached: a verdict, not a crash
        assert "dead-letter" in result.output.lower()
        for name in RUN_FILES:
            assert (out / name).is_file(), name
        trace_df = pd.read_parquet(out / "trace.parquet")
        postings = trace_df[trace_df.target.str.startswith("erp")]
        assert len(postings) > 20 and (postings.outcome == "dead_lettered").all()
        sla = json.loads((out / "sla.json").read_text())
        reasons = {entry["reason"] for entry in sla["dead_letters"]}
        assert reasons == {"unmapped_item", "unknown_unit"}
        assert sla["invariants"]["lost"]["count"] == 0

    def test_a_long_erp_outage_with_the_breaker_off(self, tmp_path):
        # A breaker that never opens: every attempt hits the down ERP until the policy gives up.
        integration = {"circuit_breaker": {"failure_threshold": 1_000_000},
                       "retry": {"initial": "1s", "max_delay": "10s", "max_attempts": 4}}
        data = _scenario(integration=integration)
        data["faults"] = [{"kind": "erp_outage", "at": 0, "duration": "3h"}]
        result, out = _run(tmp_path, data)
        assert result.exit_code == 1, result.output
        for name in RUN_FILES:
            assert (out / name).is_file(), name
        trace_df = pd.read_parquet(out / "trace.parquet")
        postings = trace_df[trace_df.target.str.startswith("erp")]
        assert len(postings) > 20 and (postings.outcome == "dead_lettered").all()
        assert (postings.attempts == 4).all()
        sla = json.loads((out / "sla.json").read_text())
        assert {entry["reason"] for entry in sla["dead_letters"]} == {"retries_exhausted"}
        assert sla["invariants"]["lost"]["count"] == 0
