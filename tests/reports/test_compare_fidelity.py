"""The fidelity table of a virtual run against a live one: quantiles, counts, recovery, CI verdicts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from reports.fidelity import ALL_POSTINGS, fidelity, t95, verdict_lines, verdicts, write_fidelity


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


def _lots(root, reps: list[list[tuple[float, float]]]):
    rows = [{"replication": r, "lot": f"L{r}-{i}", "held": True, "t_hold": hold, "t_hold_at_wms": at}
            for r, lots in enumerate(reps) for i, (hold, at) in enumerate(lots)]
    rows.append({"replication": 0, "lot": "free", "held": False, "t_hold": float("nan"), "t_hold_at_wms": float("nan")})
    pd.DataFrame(rows).to_parquet(root / "lots.parquet")


def test_held_lots_and_their_propagation_side_by_side(tmp_path):
    rng = np.random.default_rng(2)
    live = _folder(tmp_path / "live", "live", [rng.exponential(10.0, 300)], [60.0])
    virtual = _folder(tmp_path / "virtual", "virtual", [rng.exponential(10.0, 300) for _ in range(2)], [60.0, 62.0])
    _lots(live, [[(100.0, 103.0), (200.0, 204.0), (300.0, float("nan"))]])  # the last hold never arrived
    _lots(virtual, [[(100.0, 102.0), (200.0, 203.0)], [(150.0, 152.0), (250.0, 255.0)]])
    rows = {(r.flow, r.figure): r for r in fidelity(live, virtual)}
    assert rows[("quality_hold", "held lots")].live == 3 and rows[("quality_hold", "held lots")].virtual == 2
    p50 = rows[("quality_hold", "hold propagation p50 (s)")]
    assert p50.live == 3.5 and p50.virtual == pytest.approx((2.5 + 3.5) / 2) and p50.samples == 2
    assert rows[("quality_hold", "hold propagation max (s)")].live == 4.0


def test_verdicts_judge_flows_with_enough_samples_and_every_recovery(tmp_path):
    rng = np.random.default_rng(3)
    live = _folder(tmp_path / "live", "live", [rng.exponential(10.0, 250)], [60.0])
    virtual = _folder(tmp_path / "virtual", "virtual", [rng.exponential(10.0, 250) for _ in range(3)],
                      [80.0, 80.0, 80.0])
    rows = fidelity(live, virtual)
    judged = {(row["flow"], row["figure"]): inside for row, _, inside in verdicts(rows)}
    assert set(judged) == {("material_issue", "p50 delay (s)"), ("material_issue", "p95 delay (s)"),
                           ("material_issue", "delivered"), ("erp_outage at 1000 s", "recovery (s)")}
    assert judged[("material_issue", "delivered")] is True and judged[("erp_outage at 1000 s", "recovery (s)")] is False
    assert verdicts(rows, min_samples=251) and all(f[0] != "material_issue" for f in
                                                    {(r["flow"], r["figure"]) for r, _, _ in verdicts(rows, 251)})
    assert len(verdict_lines(verdicts(rows))) == 4 and "MISS" in verdict_lines(verdicts(rows))[-1]
    written = json.loads(write_fidelity(rows, tmp_path / "fidelity.json").read_text())
    assert [(r["flow"], r["figure"]) for r, _, _ in verdicts(written)] == list(judged)


def test_postings_a_live_stack_created_after_the_duration_while_draining_are_not_counted(tmp_path):
    rng = np.random.default_rng(5)
    live = _folder(tmp_path / "live", "live", [rng.exponential(10.0, 300)], [60.0])  # created over 0..3000 s
    virtual = _folder(tmp_path / "virtual", "virtual", [rng.exponential(10.0, 300)], [60.0])
    for root in (live, virtual):
        (root / "run.json").write_text(json.dumps({"engine": root.name, "duration": 1500.0}))
    rows = {(r.flow, r.figure): r for r in fidelity(live, virtual)}
    assert rows[("material_issue", "delivered")].live == 150
