"""The fidelity check end to end: a live run, the virtual engine calibrated from it, the fidelity table.

:func:`fidelity_check` runs SCENARIO live (``synctwin up --plants process``), calibrates from that run
(``synctwin calibrate``), runs the virtual engine with the same seed and speed (``synctwin run
--calibration --speed``) and compares the two (``synctwin compare``), each as its own process, as a user
would. ``bench/bench_fidelity.py`` runs it; the verdicts against the acceptance bars
are :func:`reports.fidelity.verdicts`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SYNCTWIN = [sys.executable, "-m", "synctwin.cli"]


@dataclass(frozen=True)
class CheckOptions:
    """How the live and virtual runs of the check are made."""

    speed: float = 60.0
    warmup: float = 75.0  # wall seconds before scenario time 0: the live stack's start-up must fit in it
    replications: int = 5
    duration: str | None = None  # e.g. "1h": overrides the scenario's run.duration in both engines


def run_synctwin(args: list[str], log: Callable[[str], None] = print) -> int:
    """Run one ``synctwin`` command; exit codes 0 and 1 (an SLA breach: still a run to compare) pass."""
    log("$ synctwin " + " ".join(args))
    result = subprocess.run([*SYNCTWIN, *args], cwd=ROOT)
    if result.returncode not in (0, 1):
        raise RuntimeError(f"synctwin {args[0]} failed with exit code {result.returncode}")
    return result.returncode


def fidelity_check(scenario: Path, out: Path, opts: CheckOptions = CheckOptions(),
                   log: Callable[[str], None] = print) -> list[dict]:
    """Live run, calibration, calibrated virtual run and comparison under ``out`` (``live/``,
    ``calibration.yaml``, ``virtual/``); returns the rows of ``virtual/fidelity.json``."""
    live, virtual, calibration = out / "live", out / "virtual", out / "calibration.yaml"
    out.mkdir(parents=True, exist_ok=True)
    speed = f"{opts.speed:g}"
    up = ["up", str(scenario), "--speed", speed, "--plants", "process", "--insecure", "--warmup", f"{opts.warmup:g}",
          "--no-progress", "--out", str(live)]
    run = ["run", str(scenario), "--calibration", str(calibration), "--speed", speed,
           "--replications", str(opts.replications), "--out", str(virtual), "--quiet"]
    if opts.duration:
        up += ["--duration", opts.duration]
        run += ["--set", f"run.duration={opts.duration}"]
    run_synctwin(up, log)
    run_synctwin(["calibrate", str(live), "-o", str(calibration)], log)
    run_synctwin(run, log)
    run_synctwin(["compare", str(live), str(virtual)], log)
    return json.loads((virtual / "fidelity.json").read_text())
