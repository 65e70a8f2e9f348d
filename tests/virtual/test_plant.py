"""One plant twin on its own SimPy environment: windows, lots, quality gate, WAN and ERP outages."""

from __future__ import annotations

import numpy as np
import simpy

from kernel import trace
from scenarios.generator import FaultPlan, Vocabulary
from scenarios.loader import parse_scenario
from virtual import batch as B
from virtual.plant import LOT_LINE_BASE, PlantTwin

F = B.FLOW_CODE
HOUR = 3600.0


def _scenario(gate: bool = True, faults: list | None = None, **load):
    return parse_scenario({
        "name": "plant",
        "run": {"duration": "12h", "window": "1h"},
        "landscape": {
            "items": {"FG-100": {"unit": "EA", "inspection": True, "hold_rate": 0.5},
                      "RM-10": {"unit": "KG"}},
            "integration": {"quality_gate": gate},
            "plants": [{"id": "P1", "lines": 2, "machines_per_line": 3, "cycle_time": 20, "mtbf": "4h"}],
        },
        "load": {"lot_size": 30, "confirmation_interval": 300, "inspection_time": 1200, "ship_delay": 60,
                 **load},
        "faults": faults or [],
    })


def _run(scenario, seed: int = 1, hours: int = 12):
    plant = scenario.landscape.all_plants[0]
    twin = PlantTwin(simpy.Environment(), scenario, plant, 0, Vocabulary.of(scenario), FaultPlan.of(scenario),
                     np.random.default_rng(seed))
    windows = [twin.step(h * HOUR) for h in range(1, hours + 1)]
    out = B.concat([w.outbound for w in windows], B.SOURCE_COLUMNS)
    local = B.concat([w.local for w in windows])
    lots = {k: np.concatenate([w.lots[k] for w in windows if w.lots]) for k in windows[0].lots}
    return twin, windows, out, local, lots


def test_windows_hand_over_records_dated_inside_them_once():
    _, windows, out, _, _ = _run(_scenario())
    assert np.unique(out["seq"]).size == B.size(out)
    for h, w in enumerate(windows):
        t = w.outbound["t_created"]
        assert np.all((t >= h * HOUR) & (t < (h + 1) * HOUR))
        assert np.all(np.diff(w.outbound["t_edge"]) >= 0)


def test_goods_receipts_are_the_closed_lots_and_count_lot_size_units():
    twin, _, out, _, lots = _run(_scenario())
    receipts = B.take(out, out["flow"] == F[trace.GOODS_RECEIPT])
    assert np.all(receipts["qty"] == 30.0)
    assert B.size(receipts) == lots["lot"].size > 0
    good_per_line = np.bincount(twin.bank.line_of, weights=twin.bank.good_total, minlength=2)
    assert twin.mes.lots_closed.tolist() == (good_per_line // 30).astype(int).tolist()
    for line in range(2):
        numbers = np.sort(receipts["lot"][receipts["line"] == line]) - line * LOT_LINE_BASE
        # Lots 1..n in order; only a receipt dated exactly at the run's end may still be pending.
        assert numbers.tolist() == list(range(1, numbers.size + 1))
        assert twin.mes.lots_closed[line] - numbers.size in (0, 1)


def test_with_quality_gate_no_held_lot_ships_before_its_release_reaches_the_wms():
    _, _, out, _, lots = _run(_scenario(gate=True))
    held = lots["held"]
    assert held.sum() > 5
    shipped = ~np.isnan(lots["t_shipped"])
    assert not lots["shipped_while_held"].any()
    gated = lots["requires_inspection"] & shipped
    assert np.all(lots["t_shipped"][gated] >= lots["t_release_at_wms"][gated])
    ships = B.take(out, out["flow"] == F[trace.SHIPMENT])
    assert set(ships["lot"].tolist()) <= set(lots["lot"][shipped].tolist())


def test_without_quality_gate_lots_ship_before_a_late_hold_arrives():
    _, _, _, _, lots = _run(_scenario(gate=False))
    violated = lots["shipped_while_held"]
    assert violated.sum() > 0
    assert np.all(lots["t_shipped"][violated] < lots["t_hold_at_wms"][violated])


def test_wan_outage_delays_forwarding_until_it_ends():
    scenario = _scenario(faults=[{"kind": "wan_outage", "at": "3h", "duration": "90m"}])
    _, _, out, local, _ = _run(scenario)
    inside = (out["t_created"] >= 3 * HOUR) & (out["t_created"] < 4.5 * HOUR)
    assert inside.sum() > 10
    assert np.all(out["t_broker"][inside] >= 4.5 * HOUR)
    outside = out["t_created"] < 3 * HOUR
    assert np.all(out["t_broker"][outside] - out["t_created"][outside] < 1.0)
    # Quality messages to the WMS wait for the link too.
    to_wms = B.take(local, local["target"] == B.TARGET_CODE["WMS"])
    queued = (to_wms["t_broker"] >= 3 * HOUR) & (to_wms["t_broker"] < 4.5 * HOUR)
    assert np.all(to_wms["t_delivered"][queued] >= 4.5 * HOUR)


def test_orders_wait_for_an_erp_outage_to_end():
    scenario = _scenario(faults=[{"kind": "erp_outage", "at": "2h", "duration": "2h"}], orders="6/h")
    _, _, _, local, _ = _run(scenario)
    orders = B.take(local, local["flow"] == F[trace.ORDER_RELEASE])
    # A down ERP releases nothing: the orders of the outage are all released when it ends.
    inside = (orders["t_created"] >= 2 * HOUR) & (orders["t_created"] < 4 * HOUR)
    assert not inside.any()
    assert (orders["t_created"] == 4 * HOUR).sum() > 5
    assert np.all(orders["t_delivered"] >= orders["t_created"])
    assert np.all(orders["t_acked"] >= orders["t_delivered"])
    assert np.all(orders["outcome"] == B.OUTCOME_CODE[trace.DELIVERED])


def test_same_seed_same_plant_history():
    a = _run(_scenario(), seed=5, hours=3)[2]
    b = _run(_scenario(), seed=5, hours=3)[2]
    assert all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


def test_edge_hops_delay_the_outbox_and_the_broker():
    base = _scenario()
    hops = {"edge": {"mean": "2s", "distribution": "constant"},
            "edge_to_broker": {"mean": "3s", "distribution": "constant"}}
    data = base.model_dump(mode="json")
    data["landscape"]["integration"]["hops"] = hops
    _, _, plain, _, _ = _run(base)
    _, _, hopped, _, _ = _run(parse_scenario(data))
    np.testing.assert_allclose(hopped["t_edge"] - hopped["t_created"], 2.0)
    extra = (hopped["t_broker"] - hopped["t_edge"]) - np.median(plain["t_broker"] - plain["t_edge"])
    np.testing.assert_allclose(extra, 3.0, atol=1e-6)


def _refusals(local) -> dict[int, float]:
    """Lot -> when the WMS refused to ship it (the rejected shipment rows), one per lot."""
    rows = B.take(local, (local["flow"] == F[trace.SHIPMENT]) & (local["outcome"] == B.OUTCOME_CODE[trace.REJECTED]))
    assert set(rows["reason"].tolist()) <= {B.REASON_CODE[trace.REASON_LOT_ON_HOLD]}
    assert np.unique(rows["lot"]).size == rows["lot"].size and np.isnan(rows["t_broker"]).all()
    return dict(zip(rows["lot"].tolist(), rows["t_created"].tolist(), strict=True))


def test_held_lots_shipment_attempts_are_refused_rows_as_in_the_live_wms():
    for gate in (True, False):
        _, _, _, local, lots = _run(_scenario(gate=gate))
        refused = _refusals(local)
        assert len(refused) > 3
        at = {lot: k for k, lot in enumerate(lots["lot"].tolist())}
        k = np.array([at[lot] for lot in refused])
        t = np.array(list(refused.values()))
        assert lots["held"][k].all() and (t >= lots["t_hold_at_wms"][k]).all()
        assert not (t >= lots["t_release_at_wms"][k]).any()  # a released lot is never refused
        assert not np.any(lots["t_shipped"][k] < t)  # it ships only after the refusal (once released)
        # A held lot that shipped after its release was refused first, except (gate off) a hold arriving late,
        # or a hold reaching the WMS after the run's end (no attempt is written then, as live).
        held_shipped = lots["held"] & np.isfinite(lots["t_shipped"]) & ~lots["shipped_while_held"] & (
            lots["t_hold_at_wms"] <= 12 * HOUR)
        assert set(lots["lot"][held_shipped].tolist()) <= set(refused)
        assert not set(lots["lot"][lots["shipped_while_held"]].tolist()) & set(refused)


def test_quality_messages_reach_the_erp_too_without_crossing_the_wan():
    scenario = _scenario(faults=[{"kind": "wan_outage", "at": "3h", "duration": "2h"},
                                 {"kind": "erp_outage", "at": "8h", "duration": "1h"}])
    _, _, _, local, _ = _run(scenario)
    quality = B.take(local, np.isin(local["flow"], [F[trace.QUALITY_HOLD], F[trace.QUALITY_RELEASE]]))
    to_wms = B.take(quality, quality["target"] == B.TARGET_CODE["WMS"])
    to_erp = B.take(quality, quality["target"] == B.TARGET_CODE["erp-legacy"])
    assert B.size(to_erp) == B.size(to_wms) > 10 and B.size(quality) == 3 * B.size(to_wms)  # WMS, MES, ERP
    wms_at = dict(zip(to_wms["seq"].tolist(), to_wms["t_delivered"].tolist(), strict=True))
    assert set(wms_at) == set(to_erp["seq"].tolist())  # the same messages (same txn_id)
    assert (to_erp["t_delivered"] >= to_erp["t_broker"]).all() and (to_erp["t_acked"] == to_erp["t_delivered"]).all()
    cut = (to_erp["t_broker"] > 3 * HOUR) & (to_erp["t_broker"] < 5 * HOUR - 60)
    assert cut.any() and (to_erp["t_delivered"][cut] < 5 * HOUR).all()  # not held by the WAN cut ...
    assert all(wms_at[s] >= 5 * HOUR for s in to_erp["seq"][cut].tolist())  # ... which held the plant's copy
    down = (to_erp["t_broker"] > 8 * HOUR) & (to_erp["t_broker"] < 9 * HOUR - 60)
    assert down.any() and (to_erp["t_delivered"][down] >= 9 * HOUR).all()  # a down ERP takes them once back
    assert B.size(B.postings(quality)) == 0  # not postings: no ledger rows


def test_each_quality_message_reaches_the_mes_with_the_wms_rows_times():
    scenario = _scenario(faults=[{"kind": "wan_outage", "at": "3h", "duration": "2h"}])
    _, _, _, local, _ = _run(scenario)
    quality = B.take(local, np.isin(local["flow"], [F[trace.QUALITY_HOLD], F[trace.QUALITY_RELEASE]]))
    to_wms = B.take(quality, quality["target"] == B.TARGET_CODE["WMS"])
    to_mes = B.take(quality, quality["target"] == B.TARGET_CODE["MES"])
    assert B.size(to_mes) == B.size(to_wms) > 10
    key = lambda rows: np.lexsort((rows["flow"], rows["seq"]))  # noqa: E731
    wms_rows, mes_rows = B.take(to_wms, key(to_wms)), B.take(to_mes, key(to_mes))
    for col in ("seq", "flow", "lot", "t_created", "t_broker", "t_delivered", "t_acked", "outcome"):
        assert np.array_equal(wms_rows[col], mes_rows[col], equal_nan=col.startswith("t_")), col
    assert (mes_rows["t_delivered"] >= 5 * HOUR).any()  # the WAN cut held the MES's copy as it held the WMS's
    assert B.size(B.postings(to_mes)) == 0


def test_steady_issues_and_moves_are_the_seeded_arrivals_the_live_edge_posts():
    from twins.warehouse_arrivals import WarehouseArrivals

    scenario = _scenario(material_issues="20/h", inventory_moves="30/h")
    twin, _, out, _, _ = _run(scenario, seed=3)  # the plant's own rng plays no part in these
    drawn = WarehouseArrivals(scenario, 0, replication=0).between(0, 12 * HOUR)
    for flow in drawn:
        rows = B.take(out, out["flow"] == F[flow.flow])
        order = np.argsort(rows["t_created"], kind="stable")
        assert len(flow) > 100
        assert np.array_equal(rows["t_created"][order], flow.times)
        assert np.array_equal(rows["line"][order], flow.lines) and np.array_equal(rows["qty"][order], flow.qty)
    issues = B.take(out, out["flow"] == F[trace.MATERIAL_ISSUE])
    assert set(issues["item"].tolist()) == {twin.vocab.item("RM-10")}
    other = PlantTwin(simpy.Environment(), scenario, scenario.landscape.all_plants[0], 0, Vocabulary.of(scenario),
                      FaultPlan.of(scenario), np.random.default_rng(3), replication=1)
    assert not np.array_equal(other.warehouse.between(0, HOUR)[1].times, drawn[1].take(drawn[1].times < HOUR).times)
