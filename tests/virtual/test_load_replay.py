"""A live run's chain load replayed by the virtual engine: factors on the chain hops per bin of scenario time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from scenarios.loader import parse_scenario
from scenarios.spec import LoadReplaySpec
from virtual.engine import run_virtual
from virtual.load_replay import load_factor


def test_each_time_gets_its_bins_factor_and_one_outside():
    spec = LoadReplaySpec(bin=60.0, factors=[1.0, 2.5, 0.5])
    t = np.array([-1.0, 0.0, 59.9, 60.0, 150.0, 180.0, 1e6, np.nan])
    assert load_factor(spec, t).tolist() == [1.0, 1.0, 1.0, 2.5, 0.5, 1.0, 1.0, 1.0]
    assert load_factor(LoadReplaySpec(), t).tolist() == [1.0] * t.size


def test_a_factor_must_be_positive_and_the_error_says_so():
    with pytest.raises(ValidationError, match="load factors must be positive"):
        LoadReplaySpec(factors=[1.0, 0.0])


def test_a_virtual_run_stretches_the_chain_hops_where_the_live_chain_was_busy(tmp_path):
    scenario = parse_scenario({
        "name": "load-replay", "run": {"duration": "1h", "seed": 5, "window": "10m"},
        "landscape": {"erp": {"service": {"mean": "50ms"}}, "plants": [{"id": "P01", "lines": 1}],
                      "integration": {"hops": {"edge": {"mean": 2.0, "distribution": "constant"}},
                                      "replay_load": {"bin": 600, "factors": [1.0, 3.0]}}},
        "load": {"orders": 0, "material_issues": "600/h"},
    })
    run_dir = run_virtual(scenario, tmp_path / "run", replications=1, quiet=True)
    trace = pd.read_parquet(run_dir / "trace.parquet")
    posted = trace[trace.target.str.startswith("erp") & trace.t_edge.notna()]
    edge = posted.t_edge - posted.t_created
    busy = (posted.t_created >= 600) & (posted.t_created < 1200)
    assert busy.any() and (~busy).any()
    assert edge[busy].min() >= 3 * 2.0 - 1e-9
    assert edge[~busy].median() < 3.0
    assert yaml.safe_load((run_dir / "scenario.yaml").read_text())["landscape"]["integration"]["replay_load"]
