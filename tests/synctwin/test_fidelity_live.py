"""The virtual engine calibrated from a live run predicts that run: two plants live at speed 60 with an ERP
outage and quality holds, calibrated, run virtually with the same seed and speed, compared.

Acceptance of the fidelity check: for flows with at least 200 live postings, p50 and p95 posting delay
within 10 % and delivered within 2 %; the recovery after the outage within 10 %. The holds really happen in
both engines (the live QMS, the downlink and the plant's WMS, which refuses to ship a held lot) and the
fidelity table shows their propagation side by side. The same chain as ``bench/bench_fidelity.py``.

The recovery depends on when the live breaker opened, which moves by several seconds from one live run to
the next with the jitter its lanes' retries drew: the calibration replays the opening the workers recorded
(``run.json``'s ``breaker``), and the virtual engine predicts the probes, the drain and the recovery from it.
The flow's p50 moves with how busy the machine was in each wall second of the live run (the test shares two cores
with another test worker): the calibration measures that load over the run and the virtual engine replays it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from reports.fidelity import verdict_lines, verdicts
from synctwin.commands.calibrate_check import CheckOptions, fidelity_check

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "library" / "fidelity-outage.yaml"


@pytest.mark.slow
def test_the_virtual_engine_calibrated_from_a_live_run_predicts_it(tmp_path: Path):
    # 60 s of warm-up: the stack's start-up (15-40 s on two busy cores) must end before scenario time 0.
    rows = fidelity_check(SCENARIO, tmp_path, CheckOptions(speed=60, warmup=60, replications=3), log=lambda _: None)
    live_run = json.loads((tmp_path / "live" / "run.json").read_text())
    assert float(live_run["speed"]) == 60
    started = next(e["t"] for e in live_run["events"] if e["event"] == "all_started")
    assert started <= 0, f"the live stack's start-up outlasted the warm-up (up at {started:.0f} s scenario time)"
    assert [e["state"] for e in live_run["breaker"]][:1] == ["open"], "the workers recorded no breaker opening"

    judged = verdicts(rows)
    figures = {(row["flow"], row["figure"]) for row, _, _ in judged}
    assert {("material_issue", "p50 delay (s)"), ("material_issue", "p95 delay (s)"),
            ("material_issue", "delivered")} <= figures, "the burst gave no flow 200 live postings"
    assert any(figure == "recovery (s)" for _, figure in figures), "no recovery after the ERP outage to compare"
    print("\n" + "\n".join(verdict_lines(judged)))
    missed = [line for line, (_, _, inside) in zip(verdict_lines(judged), judged, strict=True) if not inside]
    assert not missed, "outside the bars:\n" + "\n".join(missed)

    # The quality holds happened in both engines, and the live WMS refused to ship a held lot.
    by_figure = {(r["flow"], r["figure"]): r for r in rows}
    held = by_figure[("quality_hold", "held lots")]
    assert held["live"] >= 2 and held["virtual"] >= 2
    assert by_figure[("quality_hold", "hold propagation p50 (s)")]["live"] > 0
    trace = pd.read_parquet(tmp_path / "live" / "trace.parquet")
    refused = trace[(trace.flow == "shipment") & (trace.reason == "lot_on_quality_hold")]
    lots = pd.read_parquet(tmp_path / "live" / "lots.parquet")
    assert not lots.shipped_while_held.fillna(False).astype(bool).any()
    assert len(refused) >= 1, "no shipment of a held lot was attempted live"
