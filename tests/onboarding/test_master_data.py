"""Master-data rows: mapped items and units pass; every kind of gap is a failing row with its fix."""

from __future__ import annotations

import yaml

from onboarding.checks.master_data import check_master_data, master_version
from onboarding.verdict import FAIL, PASS, WARN
from scenarios.loader import parse_scenario
from tests.onboarding.plants import FLEET, machine, plant

FLEET_SPEC = parse_scenario(yaml.safe_load(FLEET))
VERSION = master_version(FLEET_SPEC.landscape.items)


def rows_by_name(p):
    return {r.name: r for r in check_master_data(p, FLEET_SPEC)}


def test_complete_mapping_passes_with_the_factor_as_evidence():
    good = plant()
    versioned = good.master_data.model_copy(update={"version": VERSION})
    rows = rows_by_name(good.model_copy(update={"master_data": versioned}))
    assert all(r.verdict == PASS for r in rows.values()), rows
    assert "1 G = 0.001 KG" in rows["item CHOC-250"].evidence


def test_each_gap_is_its_own_failing_row_with_a_fix():
    broken = plant(unit="OZ", master_data={"version": "md-0000000000", "items": {"CHOC-250": "CHOC-250"}},
                   machines=[machine("Filler_A", "CHOC-250"), machine("Filler_B", "MX-777")])
    rows = rows_by_name(broken)
    assert rows["item MX-777"].verdict == FAIL and "`MX-777: <ERP item>` under master_data.items" in rows[
        "item MX-777"].fix
    assert rows["unit OZ"].verdict == FAIL and "OZ: {to: KG" in rows["unit OZ"].fix
    version = rows["master-data version"]
    assert version.verdict == FAIL and VERSION in version.fix


def test_wrong_factor_and_wrong_target_unit_fail_and_unknown_conversions_warn():
    wrong = plant(master_data={"version": VERSION, "items": {"CHOC-250": "CHOC-250", "CHOC-100": "CHOC-100"},
                               "units": {"G": {"to": "KG", "factor": 1000}}})
    assert "1 G = 0.001 KG" in rows_by_name(wrong)["unit G"].evidence
    assert rows_by_name(wrong)["unit G"].verdict == FAIL
    elsewhere = plant(master_data={"version": VERSION, "items": {"CHOC-250": "CHOC-250", "CHOC-100": "CHOC-100"},
                                   "units": {"G": {"to": "EA", "factor": 1}}})
    assert rows_by_name(elsewhere)["unit G"].verdict == FAIL
    bags = plant(unit="BAG", master_data={"version": VERSION, "items": {"CHOC-250": "CHOC-250",
                                                                        "CHOC-100": "CHOC-100"},
                                          "units": {"BAG": {"to": "KG", "factor": 0.5}}})
    assert rows_by_name(bags)["unit BAG"].verdict == WARN


def test_one_plant_unit_needed_for_two_erp_units_is_ambiguous():
    mixed = plant(master_data={"version": VERSION, "items": {"CHOC-250": "CHOC-250", "CHOC-100": "FG-100"},
                               "units": {"G": {"to": "KG", "factor": 0.001}}})
    row = rows_by_name(mixed)["unit G"]
    assert row.verdict == FAIL and "EA, KG" in row.evidence


def test_machine_without_product_and_typo_item_are_named():
    typo = plant(master_data={"version": VERSION, "items": {"CHOC-250": "CHOC-25O", "CHOC-100": "CHOC-100"},
                              "units": {"G": {"to": "KG", "factor": 0.001}}})
    row = rows_by_name(typo)["item CHOC-250"]
    assert row.verdict == FAIL and "CHOC-250" in row.fix  # the close ERP code is suggested
    no_product = plant(machines=[{"name": "M1", "signals": {"state": {"node": "i=1"}, "good": {"node": "i=2"}}}])
    assert rows_by_name(no_product)["product of M1"].verdict == FAIL
