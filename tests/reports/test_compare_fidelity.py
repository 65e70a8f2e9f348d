"""The fidelity table of a virtual run against a live one: quantiles, counts, recovery, CI verdicts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from reports.fidelity import ALL_POSTINGS, fidelity, t95, write_fidelity


def _folder(root, engine: str, delays_by_rep: list[np.ndarray], drained: list[float]):
    root.mkdir(parents=True)
    parts = []
    for rep, delays in enumerate(delays_by_rep):
        created = np.linspace(0, 3000, delays.size)
        parts.append(pd.DataFrame({"replication": rep, "flow": "material_issue", "target": "ERP-legacy",
                                   "outcome": "delivered", "t_created": created, "t_delivered": created + delays}))
    telemetry = pd.DataFrame({"replication": 0, "flow": "telemetry", "target": "analytics", "outcome": "delivered",
                              "t_created": [1.0], "t_delivered": [99.0]})
    pd.concat([*parts, telemetry]).to_parquet(root / "trace.parquet")
    (root / "run.json").write_text(json.dumps({"engine": engine}))
    fault = {"kind": "erp_outage", "start": 1000.0, "end": 1300.0,
             "replications": [{"replication": r, "drained_within": d, "queued": 10} for r, d in enumerate(drained)]}
    (root / "sla.json").write_text(json.dumps({"faults": [fault]}))
    return root


def test_side_by_side_with_relative_error_and_the_replications_ci(tmp_path):
    rng = np.random.default_rng(0)
    live = _folder(tmp_path / "live", "live", [rng.exponential(10.0, 1000)], [60.0])
    virtual = _folder(tmp_path / "virtual", "virtual",
                      [rng.exponential(10.0, 1000) for _ in range(8)], [55.0, 58.0, 62.0, 61.0, 59.0, 57.0, 63.0, 60.0])
    rows = {(r.flow, r.figure): r for r in fidelity(live, virtual)}
    p50 = rows[("material_issue", "p50 delay (s)")]
    assert p50.live == pytest.approx(10 * np.log(2), rel=0.15)
    assert abs(p50.rel_error) < 0.15 and p50.ci_low < p50.virtual < p50.ci_high
    count = rows[("material_issue", "delivered")]
    assert count.live == 1000 and count.virtual == 1000 and count.rel_error == 0.0
    assert count.inside_ci is True  # every replication delivered 1,000: an interval of one point, met
    assert (ALL_POSTINGS, "p95 delay (s)") in rows
    assert not any(r.flow == "telemetry" for r in rows.values())  # not an ERP posting
    recovery = rows[("erp_outage at 1000 s", "recovery (s)")]
    assert recovery.virtual == pytest.approx(59.375) and recovery.inside_ci is True
    assert recovery.rel_error == pytest.approx(-0.0104, abs=1e-3)
    written = json.loads(write_fidelity(list(rows.values()), tmp_path / "fidelity.json").read_text())
    assert {"rel_error", "inside_ci", "ci_low"} <= set(written[0])


def test_a_slower_virtual_run_is_outside_the_interval(tmp_path):
    rng = np.random.default_rng(1)
    live = _folder(tmp_path / "live", "live", [rng.exponential(10.0, 2000)], [60.0])
    virtual = _folder(tmp_path / "virtual", "virtual", [rng.exponential(13.0, 2000) for _ in range(5)],
                      [90.0, 95.0, 92.0, 91.0, 94.0])
    rows = {(r.flow, r.figure): r for r in fidelity(live, virtual)}
    p95 = rows[("material_issue", "p95 delay (s)")]
    assert p95.rel_error == pytest.approx(0.3, abs=0.1) and p95.inside_ci is False
    assert rows[("erp_outage at 1000 s", "recovery (s)")].inside_ci is False


def test_t_quantiles():
    assert t95(4) == pytest.approx(2.776) and t95(11) == pytest.approx(2.228) and t95(100) == 1.96
