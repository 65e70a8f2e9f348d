"""Headless Chromium on the live view page: the DOM after its script ran, and a screenshot."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx


def chromium_command(profile: Path) -> list[str]:
    """A headless Chromium that runs the page's script for 5 s of virtual time."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    return [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
            "--disable-background-networking", f"--user-data-dir={profile}", "--window-size=1200,900",
            "--virtual-time-budget=5000"]


def page_dom_and_screenshot(url: str, profile: Path, path: Path) -> str:
    """One load of the page: its DOM once its script filled it in, and a PNG of it as painted at ``path``.
    One Chromium start, not two: on a busy machine each start takes seconds, and a fault lasts 5-10 wall s."""
    done = subprocess.run([*chromium_command(profile), f"--screenshot={path}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def active_faults(view_url: str) -> list[dict[str, Any]]:
    """The faults the live view's data shows as still going on (none while the page cannot be read)."""
    try:
        data = httpx.get(view_url.removesuffix("/view") + "/live", timeout=10).json()
    except (httpx.HTTPError, json.JSONDecodeError):
        return []
    return [f for f in data.get("faults", []) if f.get("end") is None]


def watch_for_a_fault(view_url: str, work: Path, seen: dict[str, Any], stop: threading.Event) -> None:
    """While a run goes on (until ``stop``): wait for one of its faults to be active in the live view, load the
    page in headless Chromium and, if the page shows the fault as ACTIVE, keep the DOM and the screenshot of
    that load: the page fetched its data while the fault lasted, so that is what it painted. ``seen`` gets the
    fault, the DOM and the PNG (or ``error``). A fault that ended before the page showed it is skipped for the
    next one. Meant for a thread beside a run on the main thread."""
    try:
        while not stop.is_set():
            active = active_faults(view_url)
            if not active:
                stop.wait(0.1)
                continue
            shot = work / "during-a-fault.png"
            dom = page_dom_and_screenshot(view_url, work / "profile", shot)
            row = f'<tr class="open"><td>{active[0]["kind"]}</td><td>{active[0]["what"]}</td>'
            if row in dom and "ACTIVE" in dom:
                seen.update(fault=active[0], dom=dom, shot=shot)
                return
            while active_faults(view_url) and not stop.is_set():  # wait for the next fault
                stop.wait(0.2)
        seen["error"] = "no fault was seen active in the live view while the run lasted"
    except Exception as exc:  # noqa: BLE001 - reported by the test on the main thread
        seen["error"] = f"{type(exc).__name__}: {exc}"
