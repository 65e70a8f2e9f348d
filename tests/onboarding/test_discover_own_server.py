"""Discovery against synctwin's own secured plant server: plain folders bound by the profile's names."""

from __future__ import annotations

import asyncio
import time

import pytest
import yaml
from typer.testing import CliRunner

from live.opcua_server import ensure_certificate, load_opcua_credentials
from live.plant_host import PlantHost
from onboarding.opcua_access import CLIENT_URI
from scenarios.spec import Scenario
from synctwin.cli import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("own")
    scenario = Scenario.model_validate({"name": "own", "landscape": {"plants": [
        {"id": "P01", "lines": 2, "machines_per_line": 2, "cycle_time": "10s"}]}})
    host = PlantHost(scenario, "P01", run_dir, epoch=time.time(), speed=600, insecure=False)
    host.start()
    yield host.url, run_dir
    host.stop()


def test_discover_binds_every_signal_of_synctwins_own_server_with_security_on(own_server, tmp_path, monkeypatch):
    url, run_dir = own_server
    user, password = load_opcua_credentials(run_dir)
    # the run's servers trust client certificates in RUN_DIR/state/pki/trusted, where this one is copied
    cert, key = asyncio.run(ensure_certificate(run_dir / "state" / "pki", "onboarding", CLIENT_URI, server=False))
    monkeypatch.setenv("SYNCTWIN_OPCUA_PASSWORD", password)
    out = tmp_path / "p01.yaml"
    result = CliRunner().invoke(app, ["discover", url, "--plant", "P01", "--user", user, "--security",
                                      "Basic256Sha256,Sign", "--cert", str(cert), "--key", str(key), "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = yaml.safe_load(out.read_text())
    machines = data["machines"]
    assert [m["name"] for m in machines] == ["Line01/M01", "Line01/M02", "Line02/M01", "Line02/M02"]
    first = machines[0]
    assert first["structure"] == "folder"
    expected = {"state": "State", "good": "GoodCount", "scrap": "ScrapCount", "cycle_time": "CycleTime",
                "speed": "Speed", "temperature": "Temperature", "alarm": "Alarm"}
    assert {s: b["node"].split(";s=")[1] for s, b in first["signals"].items()} == {
        s: f"P01.Line01.M01.{leaf}" for s, leaf in expected.items()}
    assert [u["signal"] for u in first["unbound"]] == []  # product is optional and never listed
    assert data["endpoint"]["mode"] == "Sign" and data["endpoint"]["certificate"] == str(cert)
    assert data["unit"] == "EA"


def test_wrong_password_and_bad_options_are_reported(own_server, tmp_path, monkeypatch):
    url, _ = own_server
    monkeypatch.delenv("SYNCTWIN_OPCUA_PASSWORD", raising=False)
    result = CliRunner().invoke(app, ["discover", url, "--user", "edge", "--password", "wrong", "--security",
                                      "Basic256Sha256,SignAndEncrypt", "-o", str(tmp_path / "x.yaml")])
    assert result.exit_code == 2 and "could not browse" in result.output
    bad = CliRunner().invoke(app, ["discover", url, "--security", "Rot13,Sign"])
    assert bad.exit_code == 2 and "Rot13" in bad.output
    assert CliRunner().invoke(app, ["discover", "http://plant:80"]).exit_code == 2
