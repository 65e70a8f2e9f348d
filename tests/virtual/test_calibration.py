"""Calibration: hop service times fitted from a live run's trace, applied to a virtual run at a speed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from synctwin.cli import app
from virtual.calibration import (
    CalibrationError,
    HopFit,
    calibrate,
    fit_samples,
    hops_at_speed,
    read_calibration,
    write_calibration,
)

runner = CliRunner()
SPEED = 60.0
SCENARIO = {
    "name": "cal",
    "run": {"duration": "2h", "seed": 5, "window": "30m", "speed": SPEED},
    "landscape": {"erp": {"service": {"mean": "50ms"}}, "plants": [{"id": "P01", "lines": 1, "machines_per_line": 2}]},
    "load": {"orders": 0},
}


def live_run(root, n: int = 4000, erp_arrival: bool = True, engine: str = "live"):
    """A live run folder whose hops are known: edge constant 100 ms wall, edge -> broker lognormal
    (mean 50 ms, sigma 0.6), broker -> ERP exponential (mean 20 ms), the ERP's 50 ms of scenario service
    plus 8 ms wall of its own processing; an ERP outage whose postings took long."""
    rng = np.random.default_rng(3)
    created = np.sort(rng.uniform(0, 7000, n))
    edge = created + 0.1 * SPEED
    sigma = 0.6
    broker = edge + rng.lognormal(np.log(0.05) - sigma**2 / 2, sigma, n) * SPEED
    arrival = broker + rng.exponential(0.02, n) * SPEED
    delivered = arrival + rng.exponential(0.05, n) + rng.exponential(0.008, n) * SPEED
    in_outage = (created > 3000) & (created < 3600)
    delivered[in_outage] += 900.0
    edge[in_outage] += 500.0  # nonsense hops inside the fault: must not be fitted
    trace = pd.DataFrame({
        "replication": 0, "flow": "material_issue", "target": "ERP-legacy", "outcome": "delivered", "attempts": 1,
        "t_created": created, "t_edge": edge, "t_broker": broker, "t_delivered": delivered,
        "t_erp_arrival": arrival if erp_arrival else np.nan, "t_service_start": arrival if erp_arrival else np.nan,
    })
    root.mkdir(parents=True, exist_ok=True)
    trace.to_parquet(root / "trace.parquet")
    record = {"run_id": "live-1", "engine": engine, "speed": SPEED, "scenario": "cal",
              "faults": [{"kind": "erp_outage", "start": 3000.0, "end": 3600.0}]}
    (root / "run.json").write_text(json.dumps(record))
    (root / "scenario.yaml").write_text(yaml.safe_dump(SCENARIO))
    return root


def test_each_hop_is_fitted_in_wall_seconds_with_its_shape(tmp_path):
    cal = calibrate(live_run(tmp_path / "live"))
    hops = cal["hops"]
    assert cal["speed"] == SPEED
    # The configured intervals' expected share is kept apart in scenario seconds (half of sampling,
    # publishing and scan, 1 s each, for the edge; half the 1 s flush for edge -> broker), not stretched.
    assert hops["edge"]["distribution"] == "constant" and hops["edge"]["interval"] == pytest.approx(1.5)
    # (within the joint fit's few per cent: the hops' independent sum matches the live median end to end)
    assert hops["edge"]["mean"] == pytest.approx((6.0 - 1.5) / SPEED, rel=0.03)
    assert hops["edge_to_broker"]["distribution"] == "lognormal"
    assert hops["edge_to_broker"]["interval"] == pytest.approx(0.5)
    assert hops["edge_to_broker"]["mean"] == pytest.approx(0.05 - 0.5 / SPEED, rel=0.06)
    assert hops["edge_to_broker"]["sigma"] == pytest.approx(0.6, rel=0.1)
    assert hops["broker_to_erp"]["distribution"] == "exponential"
    assert hops["broker_to_erp"]["mean"] == pytest.approx(0.02, rel=0.06)
    # The ERP's own processing beyond its configured (scenario-time) service, in wall seconds.
    assert hops["erp"]["mean"] == pytest.approx(0.008, rel=0.1) and hops["erp"]["interval"] == 0.0
    assert hops["edge"]["samples"] < 4000  # the fault window's postings were left out


def test_without_erp_arrival_the_erp_hop_comes_from_the_delivery_less_the_service(tmp_path):
    cal = calibrate(live_run(tmp_path / "live", erp_arrival=False))
    # t_broker -> t_delivered is 20 + 8 ms wall of hop and processing plus the ERP's 50 ms of scenario service.
    assert cal["hops"]["broker_to_erp"]["mean"] == pytest.approx(0.028, rel=0.1)
    assert "erp" not in cal["hops"]
    assert any("no ERP arrival" in note for note in cal["notes"])


def test_applied_at_a_speed_processing_is_stretched_and_the_note_says_what_is_predicted(tmp_path):
    path = tmp_path / "cal.yaml"
    result = runner.invoke(app, ["calibrate", str(live_run(tmp_path / "live")), "-o", str(path)])
    assert result.exit_code == 0, result.output
    cal = read_calibration(path)
    at_live, note = hops_at_speed(cal)
    assert at_live["landscape.integration.hops.edge"]["mean"] == pytest.approx(6.0, rel=0.03)
    assert "predicts that live run" in note
    assert at_live["landscape.integration.hops.erp"]["mean"] == pytest.approx(cal["fits"]["erp"].mean * SPEED)
    real, note = hops_at_speed(cal, 1.0)
    assert real["landscape.integration.hops.edge"]["mean"] == pytest.approx(1.5 + 4.5 / SPEED, rel=0.03)
    assert "real plant" in note


def test_a_virtual_run_folder_is_refused_with_the_fix(tmp_path):
    with pytest.raises(CalibrationError, match="calibrate from a live run"):
        calibrate(live_run(tmp_path / "virtual", engine="virtual"))
    result = runner.invoke(app, ["calibrate", str(tmp_path / "missing"), "-o", str(tmp_path / "c.yaml")])
    assert result.exit_code == 2


def test_fit_picks_the_shape_of_the_samples():
    rng = np.random.default_rng(1)
    assert fit_samples(rng.exponential(2.0, 20000)).distribution == "exponential"
    assert fit_samples(np.full(100, 0.3)).distribution == "constant"
    assert fit_samples(rng.lognormal(0, 1.2, 20000)).distribution == "lognormal"


@pytest.mark.slow
@pytest.mark.usefixtures("ray_cluster")
def test_run_with_a_calibration_uses_its_hops(tmp_path):
    path = tmp_path / "cal.yaml"
    assert runner.invoke(app, ["calibrate", str(live_run(tmp_path / "live")), "-o", str(path)]).exit_code == 0
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    out = tmp_path / "virtual"
    result = runner.invoke(app, ["run", str(scenario), "--calibration", str(path), "--out", str(out), "--quiet"])
    assert result.exit_code in (0, 1), result.output
    assert "predicts that live run" in result.output
    trace = pd.read_parquet(out / "trace.parquet")
    erp = trace[trace.target.str.startswith("erp") & (trace.outcome == "delivered")]
    assert (erp.t_edge - erp.t_created).to_numpy() == pytest.approx(6.0, rel=0.03)
    assert (erp.t_erp_arrival - erp.t_broker).mean() == pytest.approx(0.02 * SPEED + 0.02, rel=0.25)
    record = json.loads((out / "run.json").read_text())
    assert any("predicts that live run" in note for note in record["notes"])
    real = runner.invoke(app, ["run", str(scenario), "--calibration", str(path), "--speed", "1",
                               "--out", str(tmp_path / "real"), "--quiet"])
    assert "real plant" in real.output
    trace = pd.read_parquet(tmp_path / "real" / "trace.parquet")
    erp = trace[trace.target.str.startswith("erp") & (trace.outcome == "delivered")]
    assert (erp.t_edge - erp.t_created).to_numpy() == pytest.approx(1.5 + 4.5 / SPEED, rel=0.03)


def test_the_downlink_is_fitted_from_the_lots_quality_messages_outside_wan_faults(tmp_path):
    root = live_run(tmp_path / "live", n=500)
    rng = np.random.default_rng(4)
    n = 40
    hold = np.sort(rng.uniform(0, 7000, n))
    fixed = 0.005 + 0.04  # the scenario's broker and WAN latencies (defaults)
    at_wms = hold + fixed + rng.exponential(0.03, n) * SPEED  # 30 ms wall of QMS, downlink and apply
    release = hold + 600.0
    in_wan = (hold > 5000) & (hold < 5600)
    at_wms[in_wan] += 400.0  # waited out a WAN outage: not processing
    pd.DataFrame({"replication": 0, "lot": [f"L{i}" for i in range(n)], "held": True, "t_hold": hold,
                  "t_hold_at_wms": at_wms, "t_release": release,
                  "t_release_at_wms": release + fixed + 0.03 * SPEED}).to_parquet(root / "lots.parquet")
    record = json.loads((root / "run.json").read_text())
    record["faults"].append({"kind": "wan_outage", "start": 5000.0, "end": 5600.0})
    (root / "run.json").write_text(json.dumps(record))
    fit = calibrate(root)["hops"]["downlink"]
    assert fit["mean"] == pytest.approx(0.03, rel=0.25) and fit["samples"] < 2 * n
    assert max(fit["p95"], fit["mean"]) < 1.0  # the WAN outage's 400 s stayed out


def test_the_lane_batches_released_after_an_outage_give_a_cost_per_posting(tmp_path):
    root = live_run(tmp_path / "live", n=500)
    trace = pd.read_parquet(root / "trace.parquet")
    # The closing probe reaches the ERP at 3610; two lane batches of 100 arrive 1 s later and the last is
    # accepted after 200 x 50 ms of service, two batches' ERP processing and 0.5 ms wall (30 ms) per posting.
    erp = calibrate(root)["hops"]["erp"]
    per_batch = erp["mean"] * SPEED
    last = 3610.0 + 1.0 + 200 * 0.05 + 2 * per_batch + 200 * 0.0005 * SPEED
    arrival = np.concatenate([[3610.0], np.full(100, 3611.0), np.full(100, 3611.5)])
    delivered = np.concatenate([[3610.1], np.linspace(3612.0, last - 5, 100), np.linspace(last - 4.9, last, 100)])
    release = pd.DataFrame({"replication": 0, "flow": "material_issue", "target": "ERP-legacy", "outcome": "delivered",
                            "attempts": 2, "t_created": 3100.0, "t_edge": 3101.0, "t_broker": 3102.0,
                            "t_delivered": delivered, "t_erp_arrival": arrival, "t_service_start": arrival})
    pd.concat([trace, release]).to_parquet(root / "trace.parquet")
    fit = calibrate(root)["hops"]["lane_batch"]
    assert fit["samples"] == 200 and fit["mean"] == pytest.approx(0.0005 + 1.0 / 200 / SPEED, rel=0.05)
    assert "lane_batch" not in calibrate(live_run(tmp_path / "quiet", n=500))["hops"]  # no release batches


def test_the_breaker_openings_and_the_probes_lateness_come_from_the_live_transitions(tmp_path):
    root = live_run(tmp_path / "live", n=500)
    scenario = SCENARIO | {"faults": [{"kind": "erp_outage", "at": 3000, "duration": 600, "erp": "legacy"}],
                           "landscape": SCENARIO["landscape"] | {"integration": {
                               "retry": {"initial": "3s"}, "circuit_breaker": {"cooldown": "30s"}}}}
    (root / "scenario.yaml").write_text(yaml.safe_dump(scenario))
    # Opened 12 s into the outage; half-opened 1.5 s (jitter mean 1 s + 0.5 s late) and 2.5 s after the grid
    # points 3042 and 3612 (after a failed probe re-opened it); another worker opened later and is ignored.
    moves = [(3012.0, "open", "w1"), (3043.5, "half_open", "w1"), (3043.6, "open", "w1"),
             (3614.5, "half_open", "w1"), (3614.7, "closed", "w1"), (3020.0, "open", "w2"),
             (3051.0, "half_open", "w2")]
    record = json.loads((root / "run.json").read_text())
    record["breaker"] = [{"replication": 0, "target": "erp-legacy", "t": t, "state": s, "worker": w}
                         for t, s, w in moves]
    (root / "run.json").write_text(json.dumps(record))
    cal = calibrate(root)
    assert cal["breaker_openings"] == {"legacy": [12.0]}
    probe = cal["hops"]["breaker_probe"]
    assert probe["samples"] == 2 and probe["mean"] * SPEED == pytest.approx((0.5 + 1.5) / 2)
    path = tmp_path / "cal.yaml"
    write_calibration(cal, path)
    at_live, note = hops_at_speed(read_calibration(path))
    assert at_live["landscape.integration.circuit_breaker.replay_openings"] == {"legacy": [12.0]}
    assert "where the live ones were" in note
    real, _ = hops_at_speed(read_calibration(path), 1.0)
    assert "landscape.integration.circuit_breaker.replay_openings" not in real  # timing of that run only


def test_the_edges_resume_after_a_wan_outage_comes_from_the_first_broker_arrival_of_its_backlog(tmp_path):
    root = live_run(tmp_path / "live", n=2000)
    scenario = SCENARIO | {"faults": [{"kind": "wan_outage", "at": 5000, "duration": 600, "plants": ["P01"]}]}
    (root / "scenario.yaml").write_text(yaml.safe_dump(scenario))
    record = json.loads((root / "run.json").read_text())
    record["faults"].append({"kind": "wan_outage", "start": 5000.0, "end": 5600.0, "plants": ["P01"]})
    (root / "run.json").write_text(json.dumps(record))
    trace = pd.read_parquet(root / "trace.parquet").assign(plant="P01")
    backlog = (trace.t_edge >= 5000) & (trace.t_edge < 5600)
    fits = calibrate(root)["hops"]["edge_to_broker"]
    hop = fits["interval"] + fits["mean"] * SPEED
    fixed = 0.04 + 0.005  # the scenario's WAN and broker latencies (defaults)
    # The edge posted again 45 s after the link healed; its backlog reached the broker one after another.
    trace.loc[backlog, "t_broker"] = 5600 + 45 + fixed + hop + np.arange(int(backlog.sum())) * 0.01
    trace.to_parquet(root / "trace.parquet")
    cal = calibrate(root)
    assert cal["edge_resumes"]["P01"] == [pytest.approx(45.0, abs=0.01)]
    at_live, _ = hops_at_speed(cal | {"fits": {}})
    assert at_live["landscape.integration.replay_edge_resumes"] == cal["edge_resumes"]


def test_a_busy_second_of_the_live_run_is_replayed_at_its_speed_only(tmp_path):
    """The live chain took twice as long for postings made in one wall second (scenario 1200-1260 s): the
    calibration keeps that second's factor, the hops are fitted without it, and only a run at the live
    speed replays it. A steady run (the other tests' folders) has no profile."""
    root = live_run(tmp_path / "live")
    trace = pd.read_parquet(root / "trace.parquet")
    busy = (trace.t_created >= 1200) & (trace.t_created < 1260)
    for column in ("t_edge", "t_broker", "t_erp_arrival", "t_service_start", "t_delivered"):
        trace.loc[busy, column] = trace.t_created[busy] + 2 * (trace[column][busy] - trace.t_created[busy])
    trace.to_parquet(root / "trace.parquet")
    cal = calibrate(root)
    factors = cal["load_profile"]["factors"]
    assert cal["load_profile"]["bin"] == SPEED
    assert factors[20] == pytest.approx(2.0, rel=0.15)
    assert max(abs(f - 1.0) for i, f in enumerate(factors) if i != 20) < 0.15
    fits = {name: HopFit(**fit) for name, fit in cal["hops"].items()}
    at_live, note = hops_at_speed(cal | {"fits": fits})
    assert at_live["landscape.integration.replay_load"] == cal["load_profile"]
    assert "busy where the live ones were" in note
    at_one, _ = hops_at_speed(cal | {"fits": fits}, speed=1.0)
    assert "landscape.integration.replay_load" not in at_one
    assert calibrate(live_run(tmp_path / "steady"))["load_profile"]["factors"] == []
