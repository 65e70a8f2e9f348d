"""Pilot reconciliation: plant counters (converted) against ERP ledger rows; lost, duplicates, dead letters."""

from __future__ import annotations

from onboarding.checks.pilot import reconcile
from onboarding.fleet import fleet_scenario
from onboarding.pilot_edge import PilotCounters, edge_config
from tests.onboarding.plants import plant, write_fleet


def outbox_row(txn: str, flow: str, item: str, qty: float, status: str = "sent") -> dict:
    return {"txn_id": txn, "flow": flow, "item": item, "qty": qty, "status": status, "reason": None}


def ledger_row(txn: str, flow: str, item: str, qty: float) -> dict:
    return {"txn_id": txn, "flow": flow, "item": item, "qty": qty, "plant": "LNZ"}


def test_counters_in_grams_reconcile_with_kilograms_in_the_ledger(tmp_path):
    subject = plant()
    fleet = fleet_scenario(write_fleet(tmp_path), subject)
    counters = PilotCounters(start={(0, "good"): 1000, (0, "scrap"): 0, (1, "good"): 0},
                             end={(0, "good"): 6000, (0, "scrap"): 500, (1, "good"): 2500})
    outbox = [outbox_row("LNZ-OC-1", "operation_confirmation", "CHOC-250", 5000),
              outbox_row("LNZ-SC-1", "scrap", "CHOC-250", 500),
              outbox_row("LNZ-OC-2", "operation_confirmation", "CHOC-100", 2500)]
    ledger = [ledger_row("LNZ-OC-1", "operation_confirmation", "CHOC-250", 5.0),
              ledger_row("LNZ-SC-1", "scrap", "CHOC-250", 0.5),
              ledger_row("LNZ-OC-2", "operation_confirmation", "CHOC-100", 2.5)]
    rec = reconcile(subject, fleet, counters, outbox, ledger, [])
    assert rec["lost"] == [] and rec["duplicates"] == [] and rec["mismatched"] == []
    assert {(x["flow"], x["item"]): x["counters"] for x in rec["items"]} == {
        ("operation_confirmation", "CHOC-250"): 5.0, ("scrap", "CHOC-250"): 0.5,
        ("operation_confirmation", "CHOC-100"): 2.5}

    # the same posting twice, one never posted, one dead-lettered: each is told apart
    outbox.append(outbox_row("LNZ-OC-3", "operation_confirmation", "CHOC-100", 100))
    outbox.append(outbox_row("LNZ-OC-4", "operation_confirmation", "CHOC-100", 100))
    ledger.append(ledger_row("LNZ-OC-1", "operation_confirmation", "CHOC-250", 5.0))
    dead = [{"txn_id": "LNZ-OC-4", "reason": "unmapped_item", "detail": "plant LNZ: item 'X' has no mapping"}]
    rec = reconcile(subject, fleet, counters, outbox, ledger, dead)
    assert rec["lost"] == ["LNZ-OC-3"] and rec["duplicates"] == ["LNZ-OC-1"]
    assert rec["dead_lettered"] == ["unmapped_item: plant LNZ: item 'X' has no mapping"]
    assert [x["item"] for x in rec["mismatched"]] == ["CHOC-250"]  # counted 5 kg, posted 10 kg


def test_pilot_edge_gives_each_machine_its_own_product():
    config = edge_config(plant(), 10.0)
    assert config.machines == 2 and [config.item_of_line(i) for i in range(2)] == ["CHOC-250", "CHOC-100"]
    assert config.unit == "G" and config.confirmation_interval == 10.0
