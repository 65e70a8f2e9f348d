"""The enterprise-to-plant downlink through the real layer, live: JetStream -> deliverer -> WAN link -> plant.

One plant at speed 60 whose inspected lots are all held: the live QMS decides on the goods receipts it
reads from JetStream, the holds and releases cross the plant's WAN link (cut for three minutes) to the
plant's WMS, which refuses to ship a held lot and ships it after its release; the enterprise's downlink
process is killed and restarted on the way. The report measures the hold
propagation and checks on the live trace that no held lot shipped. In the same run the ERP releases
orders to the plant's MES, which acknowledges each back as an uplink event: order-release latency has data;
and publishes master-data versions to it: the one the cut delays shows up as version skew.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kernel.trace import (
    GOODS_RECEIPT,
    MASTER_DATA,
    ORDER_RELEASE,
    QUALITY_HOLD,
    QUALITY_RELEASE,
    REASON_LOT_ON_HOLD,
    SHIPMENT,
)
from live.stack import LiveStack, StackOptions
from scenarios.loader import load_scenario

SCENARIO = """
name: downlink-hold
description: One plant whose inspected lots are all held; its WMS must refuse their shipments.
run: {duration: 15m, seed: 5, mode: live, speed: 60}
landscape:
  erp: {kind: legacy, service: {mean: 50ms, distribution: exponential}}
  items:
    FG-100: {unit: EA, inspection: true, hold_rate: 1.0}
    RM-10: {unit: KG}
  plants:
    - {id: P01, lines: 2, machines_per_line: 3, cycle_time: 15s, mtbf: 8h, mttr: 10m, products: [FG-100]}
load: {confirmation_interval: 1m, lot_size: 15, inspection_time: 1m, hold_duration: 4m, ship_delay: 3m, orders: 0.01,
       master_data_interval: 3m}
faults:
  - {kind: wan_outage, at: 5m, duration: 3m, plants: [P01]}
  - {kind: process_kill, at: 12m, target: downlink}
slas:
  order_release_latency: {p95: 10m}
  quality_hold_propagation: {max: 20m}  # a hold waiting for the restart after the kill takes minutes
"""


@pytest.mark.slow
def test_held_lot_shipment_is_refused_live_and_hold_propagation_is_measured(tmp_path: Path):
    (tmp_path / "hold.yaml").write_text(SCENARIO)
    run_dir = tmp_path / "run"
    stack = LiveStack(load_scenario(tmp_path / "hold.yaml"), run_dir,
                      StackOptions(speed=60, progress=False, warmup=45.0, plant_host="process"))
    # (a generous warm-up, as in test_stack_e2e: production must run from scenario time 0 on a busy machine)
    stack.run()

    trace = pd.read_parquet(run_dir / "trace.parquet")
    lots = pd.read_parquet(run_dir / "lots.parquet")
    sla = json.loads((run_dir / "sla.json").read_text())

    # Holds and releases crossed the layer: stored in JetStream, then applied at the plant's WMS and MES (one
    # delivery: the MES's rows are the WMS's twins) and at the ERP.
    every_quality = trace[trace["flow"].isin([QUALITY_HOLD, QUALITY_RELEASE])]
    to_erp, to_mes = every_quality["target"].str.startswith("ERP"), every_quality["target"] == "MES"
    quality, erp_quality = every_quality[~to_erp & ~to_mes], every_quality[to_erp]
    assert set(quality["target"]) == {"WMS"}
    wms_done = quality[quality["outcome"] == "delivered"].set_index(["txn_id"])
    mes_done = every_quality[to_mes].set_index(["txn_id"]).loc[wms_done.index]
    assert (every_quality.loc[to_mes, "outcome"] == "delivered").all() and mes_done.index.is_unique
    for col in ("t_broker", "t_delivered", "t_acked"):
        assert (mes_done[col] == wms_done[col]).all(), col
    assert (mes_done.loc[mes_done["flow"] == QUALITY_HOLD, "source"] == "QMS").sum() >= 3
    holds = quality[(quality["flow"] == QUALITY_HOLD) & (quality["outcome"] == "delivered")]
    assert len(holds) >= 3
    assert (holds["t_broker"] >= holds["t_created"]).all() and (holds["t_delivered"] > holds["t_broker"]).all()
    # The downlink process was killed at 12 min: what it had not acknowledged came again, and was applied once.
    assert quality[quality["outcome"] == "delivered"]["txn_id"].is_unique
    assert set(quality["outcome"]) <= {"delivered", "duplicate_suppressed"}
    # A hold decided while the WAN link was cut (5 to 8 min) reached the plant only after the link healed.
    cut = holds[holds["t_created"].between(5 * 60 + 5, 8 * 60 - 5)]
    assert (cut["t_delivered"] >= 8 * 60 - 5).all()

    # The same holds and releases reached the ERP, each applied once, from their own consumer on the enterprise
    # side (no WAN link: the cut did not hold them); the ERP's record of each lot matches the QMS's decisions.
    erp_done = erp_quality[erp_quality["outcome"] == "delivered"]
    assert set(erp_quality["outcome"]) <= {"delivered", "duplicate_suppressed"} and erp_done["txn_id"].is_unique
    assert set(erp_done["target"]) == {"ERP-legacy"}
    assert set(erp_done["txn_id"]) == set(quality.loc[quality["outcome"] == "delivered", "txn_id"])
    assert (erp_done["t_delivered"] > erp_done["t_broker"]).all()
    assert (erp_done["t_acked"] == erp_done["t_delivered"]).all()
    erp_cut = erp_done[erp_done["t_created"].between(5 * 60 + 5, 8 * 60 - 30)]
    assert (erp_cut["t_delivered"] < 8 * 60).all()
    with sqlite3.connect(run_dir / "state" / "erp-legacy-quality.sqlite") as db:
        at_erp = pd.read_sql("SELECT * FROM lot_holds", db).set_index("lot")
    released = set(erp_done.loc[erp_done["flow"] == QUALITY_RELEASE, "lot"])
    erp_holds = erp_done[erp_done["flow"] == QUALITY_HOLD].set_index("lot")
    assert (at_erp.loc[erp_holds.index, "t_hold"] == erp_holds["t_created"]).all()
    assert (at_erp.loc[erp_holds.index, "held"] == [lot not in released for lot in erp_holds.index]).all()

    # The WMS attempted to ship held lots and refused them, with the reason, in the trace.
    refused = trace[(trace["flow"] == SHIPMENT) & (trace["outcome"] == "rejected")]
    assert len(refused) >= 1 and set(refused["reason"]) == {REASON_LOT_ON_HOLD}
    held = lots.set_index("lot").loc[refused["lot"]]
    assert held["held"].all() and (held["t_hold_at_wms"] <= refused["t_created"].to_numpy()).all()
    # ... and shipped each only after its release reached the WMS; no held lot shipped (the invariant).
    shipped = lots[np.isfinite(lots["t_shipped"])]
    assert len(shipped) >= 1
    gated = shipped[shipped["held"]]
    assert (gated["t_shipped"] >= gated["t_release_at_wms"]).all()
    assert sla["invariants"]["held_lots_shipped"]["count"] == 0 and sla["invariants"]["held_lots_shipped"]["passed"]
    assert sla["invariants"]["lost"]["count"] == 0

    # Goods receipts of inspected lots are complete (t_acked) at the QMS's disposition, as in the virtual engine.
    receipts = trace[(trace["flow"] == GOODS_RECEIPT) & (trace["outcome"] == "delivered")]
    decided = receipts.join(lots.set_index("lot")["t_release"], on="lot")
    done = decided[decided["t_release"] <= 15 * 60]
    assert len(done) >= 3 and (done["t_acked"] == np.fmax(done["t_release"], done["t_acked"])).all()
    assert (done["t_acked"] >= done["t_delivered"]).all() and (done["t_acked"] > done["t_delivered"]).any()
    assert decided.loc[~(decided["t_release"] <= 15 * 60), "t_acked"].isna().all()

    # Hold propagation (decided -> applied at the WMS) is measured from the live run.
    prop = sla["slas"]["quality_hold_propagation"]
    assert prop["samples"] >= 3 and prop["status"] == "pass"
    assert 0 < prop["stats"]["p50"]["value"] < 60  # seconds of scenario time with the link up
    applied = lots[lots["held"] & np.isfinite(lots["t_hold_at_wms"])]
    assert (applied["t_hold_at_wms"] >= applied["t_hold"]).all()

    # The plant applied every message once, by txn_id, in order per lot (a hold before its release).
    with sqlite3.connect(run_dir / "state" / "edge-P01.sqlite") as db:
        inbox = pd.read_sql("SELECT * FROM downlink_inbox ORDER BY rowid", db)
        at_mes = pd.read_sql("SELECT * FROM mes_lot_quality", db).set_index("lot")
    # ... and the MES knows each held lot's status: released once its release arrived, else held.
    released_at_plant = set(wms_done.loc[wms_done["flow"] == QUALITY_RELEASE, "lot"])
    assert (at_mes.loc[holds["lot"], "status"] == ["released" if lot in released_at_plant else "held"
                                                   for lot in holds["lot"]]).all()
    assert inbox["txn_id"].is_unique
    first = inbox.groupby("lot")["flow"].first()
    assert (first[first.index.isin(holds["lot"])] == QUALITY_HOLD).all()

    # Orders: released by the ERP, applied at the MES over the same link, acknowledged back (t_acked).
    orders = trace[trace["flow"] == ORDER_RELEASE]
    delivered = orders[orders["outcome"] == "delivered"]
    assert len(delivered) >= 5 and delivered["txn_id"].is_unique and set(orders["txn_id"]) == set(delivered["txn_id"])
    orders = delivered
    assert (orders["t_delivered"] > orders["t_broker"]).all() and (orders["t_acked"] > orders["t_delivered"]).all()
    assert not trace["txn_id"].str.startswith("ACK-").any()  # the MES's acks end their orders' rows
    latency = sla["slas"]["order_release_latency"]
    assert latency["samples"] == len(orders) and latency["status"] == "pass"

    # Master data: versions 1, 2, 3 ... applied at the MES; the one released during the cut arrived after it,
    # and the postings P01 created meanwhile are counted as version skew in sla.json.
    master = trace[trace["flow"] == MASTER_DATA].sort_values("qty")
    assert master["qty"].tolist() == list(range(1, len(master) + 1)) and len(master) >= 3
    assert (master["outcome"] == "delivered").all() and (master["target"] == "MES").all()
    late = master[master["t_created"].between(5 * 60, 8 * 60 - 5)]
    assert len(late) == 1 and (late["t_delivered"] >= 8 * 60 - 5).all()
    assert sla["version_skew"]["versions"] == len(master) and sla["version_skew"]["by_plant"]["P01"] >= 1
