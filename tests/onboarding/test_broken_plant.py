"""A broken plant -- unmapped item, unit without conversion, unsupported schema version, anonymous-only
endpoint -- is not ready, each reason on its own row with its fix; Chromium shows them on the first screen."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from typer.testing import CliRunner

from onboarding.checks.master_data import master_version
from scenarios.loader import load_scenario
from synctwin.cli import app
from tests.onboarding.plants import FLEET

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Written into the DOM by the page itself once laid out: the verdict and every failing row, each with
# whether it lies entirely inside the first screen (the window Chromium opens).
PROBE = """<script>
window.addEventListener('load', () => {
  const inside = el => { const r = el.getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; };
  const rows = [...document.querySelectorAll('#attention tr.row-fail')].map(
      tr => ({name: tr.children[2].textContent, first_screen: inside(tr)}));
  const banner = document.querySelector('#verdict');
  document.body.setAttribute('data-probe', JSON.stringify(
      {verdict: banner.textContent.trim(), verdict_first_screen: inside(banner), failing: rows}));
});
</script></body>"""


@pytest.fixture(scope="module")
def broken(anonymous_vendor, tmp_path_factory):
    url, folder = anonymous_vendor
    work = tmp_path_factory.mktemp("broken")
    fleet = work / "fleet.yaml"
    fleet.write_text(FLEET.replace("    CHOC-100: {unit: KG}\n", ""))  # CHOC-100 is no ERP item here
    plant_path = work / "plant.yaml"
    found = CliRunner().invoke(app, ["discover", url, "--plant", "BRK", "-o", str(plant_path)])
    assert found.exit_code == 0, found.output
    data = yaml.safe_load(plant_path.read_text())
    data["schema_version"] = "v3"
    data["master_data"] = {"version": master_version(load_scenario(fleet).landscape.items),
                           "items": {"CHOC-250": "CHOC-250"}, "units": {}}  # G has no conversion to KG
    plant_path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = work / "onboarding"
    result = CliRunner().invoke(app, ["onboard", str(plant_path), "--into", str(fleet), "--out", str(out),
                                      "--pilot-minutes", "0", "--no-capacity"])
    return result, out


def test_not_ready_with_each_reason_on_its_own_row_and_its_fix(broken):
    result, out = broken
    assert result.exit_code == 1, result.output
    assert "VERDICT not ready" in result.output
    report = json.loads((out / "onboarding.json").read_text())
    failing = {r["name"]: r for r in report["rows"] if r["verdict"] == "fail"}
    assert report["verdict"] == "not ready"
    item, unit, schema, policy = (failing["item CHOC-100"], failing["unit G"], failing["schema version v3"],
                                  failing["endpoint security policy"])
    assert "no mapping" in item["evidence"] and "master_data.items" in item["fix"]
    assert "no conversion to the ERP's KG" in unit["evidence"] and "G: {to: KG, factor: 0.001}" in unit["fix"]
    assert "v1, v2" in schema["evidence"] and "v2" in schema["fix"]
    assert "anonymous access" in policy["evidence"] and "Basic256Sha256" in policy["fix"]
    assert report["rows"][0]["verdict"] == "fail"  # failing rows come first


def test_chromium_first_screen_shows_the_verdict_and_the_failing_rows(broken, tmp_path):
    _, out = broken
    page = tmp_path / "onboarding-probe.html"
    page.write_text((out / "onboarding.html").read_text().replace("</body>", PROBE))
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,900"]
    dom = subprocess.run([*cmd, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = tmp_path / "first-screen.png"
    painted = subprocess.run([*cmd, f"--screenshot={shot}", (out / "onboarding.html").as_uri()], capture_output=True,
                             text=True, timeout=120)
    assert painted.returncode == 0 and shot.stat().st_size > 20_000, painted.stderr[-2000:]
    probe = json.loads(re.search(r'data-probe="([^"]*)"', dom.stdout).group(1).replace("&quot;", '"'))
    assert "Plant BRK: not ready" in probe["verdict"] and probe["verdict_first_screen"]
    names = {row["name"] for row in probe["failing"]}
    assert {"item CHOC-100", "unit G", "schema version v3", "endpoint security policy"} <= names
    assert all(row["first_screen"] for row in probe["failing"]), probe["failing"]
