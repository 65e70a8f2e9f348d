"""A vendor's secured plant server (separate process, Machinery and PackML, grams, one machine without a
scrap counter): discover binds it; onboard, joining a rollout wave, finds it ready with warnings, and the
pilot reconciles."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from onboarding.checks.master_data import master_version
from scenarios.loader import load_scenario
from synctwin.cli import app
from tests.onboarding.conftest import PASSWORD, USER
from tests.onboarding.plants import write_fleet

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def discovered(secure_vendor):
    url, folder = secure_vendor
    plant_path = folder / "plant.yaml"
    result = CliRunner().invoke(app, ["discover", url, "--plant", "LNZ", "--user", USER, "--password", PASSWORD,
                                      "--security", "Basic256Sha256,SignAndEncrypt", "-o", str(plant_path)])
    assert result.exit_code == 0, result.output
    return plant_path, result.output


def test_discover_binds_machinery_and_packml_machines_and_lists_what_is_missing(discovered):
    plant_path, output = discovered
    data = yaml.safe_load(plant_path.read_text())
    machines = {m["name"]: m for m in data["machines"]}
    assert set(machines) == {"Filler_A", "Filler_B", "Wrapper_C"}
    assert machines["Filler_A"]["structure"] == "machinery" and machines["Wrapper_C"]["structure"] == "packml"
    a = machines["Filler_A"]["signals"]
    assert a["state"]["node"].endswith("Filler_A.ItemState.CurrentState")  # not the operation mode's CurrentState
    assert a["good"]["node"].endswith("Filler_A.Production.PartsProduced") and a["good"]["unit"] == "g"
    assert a["scrap"]["node"].endswith("Filler_A.Production.Rejects")
    assert {"cycle_time", "speed", "temperature", "alarm"} <= set(a)
    assert machines["Filler_A"]["identification"]["Manufacturer"] == "ACME Packaging"
    assert "scrap" not in machines["Filler_B"]["signals"]
    assert [u["signal"] for u in machines["Filler_B"]["unbound"]] == ["scrap"]
    assert machines["Wrapper_C"]["signals"]["good"]["node"].endswith("Admin.ProdProcessedCount")
    assert data["unit"] == "G" and data["endpoint"]["server_certificate"]["sha256"]
    assert "password" not in data["endpoint"] and data["endpoint"]["password_env"]
    assert "not bound scrap" in output


def test_onboard_is_ready_with_warnings_naming_the_missing_counter_and_the_pilot_reconciles(
        discovered, tmp_path, monkeypatch):
    plant_path, _ = discovered
    fleet = write_fleet(tmp_path)
    data = yaml.safe_load(plant_path.read_text())
    data["master_data"] = {"version": master_version(load_scenario(fleet).landscape.items),
                           "items": {"CHOC-250": "CHOC-250", "CHOC-100": "CHOC-100"},
                           "units": {"G": {"to": "KG", "factor": 0.001}}}
    data["lot_size"] = 2000
    plant_path.write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv(data["endpoint"]["password_env"], PASSWORD)
    out = tmp_path / "onboarding"
    result = CliRunner().invoke(app, ["onboard", str(plant_path), "--into", str(fleet), "--wave", "W1",
                                      "--out", str(out), "--pilot-minutes", "1", "--pilot-interval", "5s",
                                      "--replications", "2", "--capacity-duration", "1h"])
    report = json.loads((out / "onboarding.json").read_text())
    failing = [r for r in report["rows"] if r["verdict"] == "fail"]
    assert result.exit_code == 0, (result.output, failing)
    assert "VERDICT ready with warnings" in result.output
    assert report["verdict"] == "ready with warnings"
    warnings = {r["name"]: r for r in report["rows"] if r["verdict"] == "warn"}
    assert "Filler_B: no scrap counter" in warnings and "Filler_B" in warnings["Filler_B: no scrap counter"]["fix"]
    rows = {(r["check"], r["name"]): r for r in report["rows"]}
    assert rows[("pilot", "lost")]["evidence"].startswith("lost 0, pending 0, rejected 0")
    assert rows[("pilot", "duplicates")]["evidence"] == "duplicates 0"
    assert rows[("pilot", "counters reconcile with the ERP ledger")]["verdict"] == "pass"
    pilot = report["figures"]["pilot"]
    assert pilot["erp_postings"] > 0 and pilot["ledger_rows"] == pilot["erp_postings"]
    assert {x["flow"] for x in pilot["items"]} == {"operation_confirmation", "scrap"}
    assert rows[("security", "server certificate")]["verdict"] == "pass"
    assert rows[("security", "cannot read P01's data")]["verdict"] == "pass"
    # the plant joins wave W1 (to the rate-limited cloud ERP): the rollout's evaluation reruns with it
    assert rows[("capacity", "fleet SLAs with the plant")]["verdict"] == "pass"
    wave = rows[("capacity", "wave W1 with LNZ")]
    assert wave["verdict"] == "pass" and "(P01, LNZ)" in wave["evidence"] and "erp-cloud" in wave["evidence"]
    for name in ("erp-legacy headroom", "erp-cloud headroom", "erp-cloud rate-limit headroom"):
        assert rows[("capacity", name)]["verdict"] == "pass" and "[" in rows[("capacity", name)]["evidence"]
    sla = json.loads((out / "capacity" / "with-plant" / "sla.json").read_text())
    assert [w["plants"] for w in sla["per_wave"] if w["wave"] == "W1"] == [["P01", "LNZ"]]
    html = (out / "onboarding.html").read_text()
    assert "Plant LNZ: ready with warnings" in html and "id='reconciliation'" in html
