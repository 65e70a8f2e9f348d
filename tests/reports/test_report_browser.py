"""Reports of real runs opened in headless Chromium, as an executive would open them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reports.narrative import dur
from synctwin.cli import app

pytestmark = pytest.mark.slow
LIBRARY = Path(__file__).resolve().parents[2] / "scenarios" / "library"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]
UNIT = re.compile(r"\(([^()]+)\)\s*$")




class Page(HTMLParser):
    """Text of the summary section and the chart figures' metadata, from Chromium's rendered DOM."""

    def __init__(self):
        super().__init__()
        self.section = None
        self.summary: list[str] = []
        self.charts: list[dict[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.section = attrs.get("id")
        if tag == "figure" and "chart" in (attrs.get("class") or ""):
            self.charts.append(attrs)

    def handle_data(self, data):
        if self.section == "summary":
            self.summary.append(data)


def open_in_chromium(html: Path, tmp: Path) -> tuple[Page, str]:
    profile = tmp / "profile"
    shot = tmp / "shot.png"
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--window-size=1280,2000"]
    dom = subprocess.run([*cmd, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot_run = subprocess.run([*cmd, f"--screenshot={shot}", html.as_uri()], capture_output=True, text=True,
                              timeout=120)
    assert shot_run.returncode == 0 and shot.stat().st_size > 20_000  # something was painted
    page = Page()
    page.feed(dom.stdout)
    return page, dom.stderr + shot_run.stderr


@pytest.mark.usefixtures("ray_cluster")
@pytest.mark.parametrize("scenario", ["erp-outage", "rollout-waves", "fleet-week"])
def test_report_opens_in_chromium_with_verdicts_matching_sla_json(tmp_path, scenario):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(LIBRARY / f"{scenario}.yaml"), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    page, log = open_in_chromium(out / "report.html", tmp_path)
    errors = [line for line in log.splitlines() if "CONSOLE" in line or "net::ERR" in line or "Uncaught" in line]
    assert not errors, errors

    sla = json.loads((out / "sla.json").read_text())
    summary = " ".join(" ".join(page.summary).split())
    assert ("PASS" if sla["passed"] else "BREACH") in summary
    checked = 0
    for name, entry in sla["slas"].items():
        for check in entry["checks"]:
            if check.get("value") is None:
                continue
            shown = f"{check['value'] * 100:.2f} %" if entry["kind"] == "share" else dur(check["value"])
            assert shown in summary, (name, shown, summary[:2000])
            checked += 1
    assert checked >= 3

    assert len(page.charts) >= 4
    for chart in page.charts:
        assert chart.get("data-title"), chart
        for axis in ("data-xlabel", "data-ylabel"):
            assert UNIT.search(chart.get(axis, "")), (chart.get("data-title"), axis, chart.get(axis))
