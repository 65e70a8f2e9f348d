"""sla.json figures checked against numbers computed independently from the fixture's Parquet files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kernel.trace import ERP_POSTING_FLOWS
from reports.evaluate import evaluate_run
from reports.finalize import RunVerdict, finalize_run
from reports.runfolder import RunFolderError
from tests.reports.reports_fixture_run import OUTAGE, Expected, build_run


def _posting_delays(run_dir: Path, shipment: bool) -> pd.Series:
    trace = pd.read_parquet(run_dir / "trace.parquet")
    flows = ["shipment"] if shipment else [f for f in ERP_POSTING_FLOWS if f != "shipment"]
    rows = trace[trace["flow"].isin(flows) & (trace["outcome"] == "delivered")]
    first = rows.sort_values("t_delivered").groupby(["replication", "txn_id"]).first()
    return first["t_delivered"] - first["t_created"]


def test_posting_percentiles_match_the_trace(faulty_run: tuple[Path, Expected]) -> None:
    run_dir, _ = faulty_run
    sla = evaluate_run(run_dir)
    delays = _posting_delays(run_dir, shipment=False)
    inv = sla["slas"]["inventory_posting_delay"]
    assert inv["samples"] == len(delays)
    assert inv["stats"]["p95"]["value"] == pytest.approx(np.percentile(delays, 95))
    assert inv["stats"]["max"]["value"] == pytest.approx(delays.max())
    assert inv["checks"] == [{"stat": "p95", "threshold": 900.0, **inv["stats"]["p95"], "passed": True}]
    ship = _posting_delays(run_dir, shipment=True)
    assert sla["slas"]["shipment_posting_delay"]["stats"]["p99"]["value"] == pytest.approx(np.percentile(ship, 99))
    assert sla["slas"]["shipment_posting_delay"]["status"] == "not_set"


def test_order_release_uses_the_mes_ack(faulty_run: tuple[Path, Expected]) -> None:
    run_dir, _ = faulty_run
    trace = pd.read_parquet(run_dir / "trace.parquet")
    orders = trace[trace["flow"] == "order_release"]
    expected = np.percentile(orders["t_acked"] - orders["t_created"], 95)
    assert evaluate_run(run_dir)["slas"]["order_release_latency"]["stats"]["p95"]["value"] == pytest.approx(expected)


def test_outage_queue_drain_and_recovery(faulty_run: tuple[Path, Expected]) -> None:
    run_dir, exp = faulty_run
    sla = evaluate_run(run_dir)
    (fault,) = sla["faults"]
    assert (fault["start"], fault["end"]) == OUTAGE
    assert fault["queued"] == exp.queued_during_outage == 90
    assert fault["queued_undelivered"] == 0
    assert fault["drained_within"] == pytest.approx(exp.drained_within)
    # The queue drains one posting a second; steady state is <= 5 waiting, so recovery is ~85 s.
    assert 84.0 <= fault["recovery"]["value"] <= 90.0
    assert sla["slas"]["recovery_time"]["status"] == "pass"
    assert sla["slas"]["recovery_time"]["stats"]["worst"]["value"] == fault["recovery"]["value"]


def test_reconciliation_share(faulty_run: tuple[Path, Expected]) -> None:
    run_dir, _ = faulty_run
    trace = pd.read_parquet(run_dir / "trace.parquet")
    sources = trace[trace["flow"].isin(ERP_POSTING_FLOWS)]["txn_id"].nunique()
    rec = evaluate_run(run_dir)["slas"]["reconciled_within"]
    # Not reconciled: the dead-lettered and the edge-dropped transaction (nothing is late by 1 h).
    assert rec["samples"] == sources
    assert rec["not_reconciled"] == 2
    assert rec["stats"]["share"]["value"] == pytest.approx((sources - 2) / sources)


def test_invariants_name_the_offenders(faulty_run: tuple[Path, Expected]) -> None:
    run_dir, exp = faulty_run
    inv = evaluate_run(run_dir)["invariants"]
    assert inv["lost"]["ids"] == exp.lost_ids
    assert (inv["lost"]["edge_dropped"], inv["lost"]["delivered_not_posted"]) == (1, 1)
    assert inv["duplicates_posted"]["ids"] == exp.duplicate_ids
    assert inv["duplicates_posted"]["by_erp"] == {"erp-legacy": 1}
    assert inv["held_lots_shipped"]["ids"] == exp.held_shipped
    variance = inv["ledger_variance"]
    assert variance["ids"] == ["P01-LOST1"]
    (group,) = variance["groups"]
    assert (group["plant"], group["item"]) == ("P01", "FG-100")
    lost_qty = pd.read_parquet(run_dir / "trace.parquet").set_index("txn_id").loc["P01-LOST1", "qty"]
    assert group["variance"] == pytest.approx(lost_qty)


def test_breaches_are_plain_one_liners(faulty_run: tuple[Path, Expected]) -> None:
    run_dir, _ = faulty_run
    verdict = finalize_run(run_dir)
    assert isinstance(verdict, RunVerdict) and not verdict.passed
    text = "\n".join(verdict.breaches)
    assert "duplicates posted: 1 transaction posted twice to erp-legacy (e.g. P01-000010)" in text
    assert "lost: 2 transactions lost" in text and "P01-LOST1" in text
    assert "held lots shipped: 1 lot shipped while on quality hold (e.g. P01-LOTBAD)" in text
    assert all("\n" not in b for b in verdict.breaches)
    assert json.loads((run_dir / "sla.json").read_text())["breaches"] == verdict.breaches


def test_clean_run_passes_and_json_is_strict(clean_run: tuple[Path, Expected]) -> None:
    run_dir, _ = clean_run
    verdict = finalize_run(run_dir)
    assert verdict.passed, verdict.breaches
    assert verdict.breaches == []
    on_disk = json.loads((run_dir / "sla.json").read_text())
    assert on_disk["passed"] is True
    assert all(i["count"] == 0 for i in on_disk["invariants"].values())
    assert on_disk["slas"]["dlq"]["stats"]["count"]["value"] == 1.0


def test_sla_breach_is_reported(tmp_path: Path) -> None:
    run_dir, _ = build_run(tmp_path, lost=False, duplicate=False, held_shipped=False, slow=1000.0)
    verdict = finalize_run(run_dir)
    assert not verdict.passed
    (line,) = verdict.breaches
    assert line.startswith("inventory posting delay: p95 ") and "exceeds the 15 min target" in line


def test_accounting_rules_for_lost(tmp_path: Path) -> None:
    extra = [
        {"txn_id": "X-INFLIGHT", "outcome": "in_flight", "t_created": 43000.0},
        {"txn_id": "X-REJECT", "outcome": "rejected", "reason": "unmapped_item"},
        {"txn_id": "X-DEAD-NO-REASON", "outcome": "dead_lettered", "reason": ""},
        {"txn_id": "X-SUPPRESSED-ONLY", "outcome": "duplicate_suppressed", "reason": "broker_redelivery"},
        {"txn_id": "X-WMS-COPY", "outcome": "delivered", "target": "WMS", "t_delivered": 10.0},
    ]
    run_dir, _ = build_run(tmp_path, lost=False, duplicate=False, held_shipped=False, extra_rows=extra)
    lost = evaluate_run(run_dir)["invariants"]["lost"]
    assert sorted(lost["ids"]) == ["X-DEAD-NO-REASON", "X-SUPPRESSED-ONLY"]


def test_a_shipment_the_wms_refused_is_neither_unreconciled_nor_lost(tmp_path: Path) -> None:
    refused = [{"txn_id": "SHX-P01-LOT1", "flow": "shipment", "outcome": "rejected", "reason": "lot_on_quality_hold",
                "t_created": 3000.0}]
    plain, _ = build_run(tmp_path / "plain", lost=False, duplicate=False, held_shipped=False)
    run_dir, _ = build_run(tmp_path / "refused", lost=False, duplicate=False, held_shipped=False, extra_rows=refused)
    before, after = evaluate_run(plain), evaluate_run(run_dir)
    rec = after["slas"]["reconciled_within"]
    assert rec["samples"] == before["slas"]["reconciled_within"]["samples"]  # never meant for the ERP
    assert rec["not_reconciled"] == before["slas"]["reconciled_within"]["not_reconciled"]
    assert "SHX-P01-LOT1" not in after["invariants"]["lost"]["ids"]


def test_replications_give_mean_and_ci(tmp_path: Path) -> None:
    run_dir, _ = build_run(tmp_path, replications=3, lost=False, duplicate=False, held_shipped=False)
    sla = evaluate_run(run_dir)
    assert sla["run"]["replications"] == 3
    p50 = sla["slas"]["inventory_posting_delay"]["stats"]["p50"]
    per_rep = p50["per_replication"]
    assert len(per_rep) == 3 and len(set(per_rep)) == 3  # each replication is 0.1 s slower
    assert p50["value"] == pytest.approx(np.mean(per_rep))
    assert p50["ci_low"] < p50["value"] < p50["ci_high"]
    half = 4.303 * np.std(per_rep, ddof=1) / np.sqrt(3)
    assert p50["ci_high"] - p50["value"] == pytest.approx(half)
    assert sla["faults"][0]["queued"] == 90


def test_bad_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="no such run folder"):
        evaluate_run(tmp_path / "missing")
    run_dir, _ = build_run(tmp_path)
    (run_dir / "ledger.parquet").unlink()
    with pytest.raises(RunFolderError, match="ledger.parquet: file missing"):
        evaluate_run(run_dir)
    pd.read_parquet(run_dir / "trace.parquet").drop(columns=["t_broker"]).to_parquet(run_dir / "trace.parquet")
    run_dir2, _ = build_run(tmp_path, run_id="second")
    pd.read_parquet(run_dir2 / "trace.parquet").drop(columns=["t_broker"]).to_parquet(run_dir2 / "trace.parquet")
    with pytest.raises(RunFolderError, match="missing column.*t_broker"):
        evaluate_run(run_dir2)
    (run_dir2 / "run.json").write_text('{"run_id": "x"}')
    with pytest.raises(RunFolderError, match="'duration' missing"):
        evaluate_run(run_dir2)


def test_a_run_folder_from_before_the_erp_queueing_times_still_reads(tmp_path: Path) -> None:
    run_dir, _ = build_run(tmp_path)
    before = evaluate_run(run_dir)
    trace = pd.read_parquet(run_dir / "trace.parquet")
    trace.drop(columns=["t_erp_arrival", "t_service_start"]).to_parquet(run_dir / "trace.parquet")
    after = evaluate_run(run_dir)
    assert after["invariants"] == before["invariants"] and after["slas"].keys() == before["slas"].keys()


def test_per_plant_and_per_wave_tables(tmp_path: Path) -> None:
    wave = {"name": "wave-1", "at": 20000.0, "plants": ["P02"], "erp": "cloud"}
    run_dir, _ = build_run(tmp_path, waves=[wave])
    sla = evaluate_run(run_dir)
    plants = {r["plant"]: r for r in sla["per_plant"]}
    assert set(plants) == {"P01", "P02"}
    assert (plants["P01"]["lost"], plants["P01"]["duplicates_posted"], plants["P01"]["dlq"]) == (1, 1, 0)
    assert (plants["P02"]["lost"], plants["P02"]["duplicates_posted"], plants["P02"]["dlq"]) == (1, 0, 1)
    trace = pd.read_parquet(run_dir / "trace.parquet")
    p01 = trace[trace["plant"] == "P01"]
    assert plants["P01"]["transactions"] == p01["txn_id"].nunique()
    assert plants["P01"]["retries"] == (p01["attempts"] - 1).sum()
    (w,) = sla["per_wave"]
    assert (w["wave"], w["erp"], w["plants"]) == ("wave-1", "erp-cloud", ["P02"])
    after = trace[(trace["plant"] == "P02") & (trace["t_created"] >= 20000.0)]
    assert w["after"]["transactions"] == after["txn_id"].nunique()
    assert w["after"]["lost"] == 1  # P02-DROP1 was created at 20000 s
    assert w["before"]["posting_p95"] > w["after"]["posting_p95"]  # the outage was before the cutover


def test_phantom_ledger_posting_is_a_variance(tmp_path: Path) -> None:
    run_dir, _ = build_run(tmp_path, lost=False, duplicate=False, held_shipped=False)
    ledger = pd.read_parquet(run_dir / "ledger.parquet")
    phantom = ledger.iloc[[0]].assign(txn_id="P02-PHANTOM", plant="P02", qty=7.0)
    pd.concat([ledger, phantom]).to_parquet(run_dir / "ledger.parquet")
    variance = evaluate_run(run_dir)["invariants"]["ledger_variance"]
    assert variance["ids"] == ["P02-PHANTOM"]
    (group,) = variance["groups"]
    assert (group["plant"], group["variance"]) == ("P02", -7.0)


def test_fault_on_another_erp_queues_nothing_here(tmp_path: Path) -> None:
    run_dir, _ = build_run(tmp_path, lost=False, duplicate=False, held_shipped=False)
    meta = json.loads((run_dir / "run.json").read_text())
    meta["faults"].append({"kind": "erp_outage", "start": OUTAGE[0], "end": OUTAGE[1], "erp": "cloud"})
    (run_dir / "run.json").write_text(json.dumps(meta))
    legacy, cloud = evaluate_run(run_dir)["faults"]
    assert legacy["queued"] == 90
    assert cloud["queued"] == 0  # every posting of the fixture goes to erp-legacy


def test_recovery_threshold_without_faults_is_not_measured(tmp_path: Path) -> None:
    run_dir, _ = build_run(tmp_path, faults=False, lost=False, duplicate=False, held_shipped=False)
    verdict = finalize_run(run_dir)
    assert verdict.passed
    assert verdict.sla["slas"]["recovery_time"]["status"] == "no_data"
    assert "no fault windows" in (run_dir / "report.html").read_text()


def test_recovery_of_a_plant_scoped_fault_reads_that_plants_backlog(tmp_path: Path) -> None:
    # In the fixture the outage queue drains one posting a second, P01's postings before P02's. Scoped
    # to P01, the fault is over once P01's share has drained (~40 s), not the whole queue (~85 s).
    run_dir, _ = build_run(tmp_path)
    meta = json.loads((run_dir / "run.json").read_text())
    meta["faults"][0] = {**meta["faults"][0], "kind": "wan_outage", "plants": ["P01"], "erp": "all"}
    (run_dir / "run.json").write_text(json.dumps(meta))
    (fault,) = evaluate_run(run_dir)["faults"]
    assert fault["queued"] == 45
    assert 35.0 <= fault["recovery"]["value"] <= 45.0


def test_a_fault_that_did_not_take_effect_or_took_it_late_is_named_beside_the_verdicts(tmp_path: Path) -> None:
    run_dir, _ = build_run(tmp_path)
    assert evaluate_run(run_dir)["problems"] == []
    meta = json.loads((run_dir / "run.json").read_text())
    meta["events"] = [
        {"t": 1501.0, "event": "fault_failed", "what": ["erp-legacy"], "detail": "Server disconnected"},
        {"t": 0.0, "event": "fault_skipped", "detail": "faults[2] erp_slow: not injected by the live stack"},
        {"t": 1201.0, "event": "erp_mode", "what": ["legacy"], "planned": 1200.0},  # on time
        {"t": 3073.0, "event": "ack_loss", "what": ["worker"], "planned": 2640.0, "share": 0.5},  # late
    ]
    (run_dir / "run.json").write_text(json.dumps(meta))
    problems = evaluate_run(run_dir)["problems"]
    assert len(problems) == 3
    assert "ack_loss of worker took effect at 3,073 s scenario time, 433 s after its planned 2,640 s" in problems[2]
    assert "erp-legacy failed at 1,501 s scenario time" in problems[0] and "Server disconnected" in problems[0]
    assert problems[1].startswith("faults[2] erp_slow")
