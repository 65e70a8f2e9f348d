"""``synctwin up`` leaves nothing running when interrupted (Ctrl-C) or when one of its children dies."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from live.procs import pid_alive
from tests.polling import poll

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "library" / "live-smoke.yaml"


def start_up(out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "synctwin.commands.live", "up", str(SCENARIO), "--out", str(out),
               "--no-progress", "--duration", "10h", *extra]
    # A session of its own, so Ctrl-C can be sent to the whole group as a terminal does; and Ctrl-C's default
    # disposition, as in a terminal's foreground job (a suite started in the background by a shell without job
    # control inherits SIGINT ignored, and Python then installs no KeyboardInterrupt handler).
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
                            preexec_fn=_default_sigint)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_all_started(proc: subprocess.Popen, out: Path, timeout: float = 180.0) -> dict[str, list[int]]:
    """Poll ``state/processes.json`` until both edges are up and the downlink (started after them) too."""
    path = out / "state" / "processes.json"
    def started() -> dict | None:
        assert proc.poll() is None, proc.communicate()
        if not path.is_file():
            return None
        pids = json.loads(path.read_text())
        logs = [out / "logs" / f"edge-{p}.log" for p in ("P01", "P02")]
        edges_ready = all(log.is_file() and "READY" in log.read_text() for log in logs)
        ready = edges_ready and "edge-P02" in pids and "downlink" in pids
        return pids if ready else None

    return poll(started, timeout, 0.1, "the stack did not start in time")


def ledger_rows(db: Path) -> int:
    """Rows in an ERP twin's ledger (0 before the service created it)."""
    if not db.is_file():
        return 0
    with contextlib.closing(sqlite3.connect(db)) as conn:
        try:
            return conn.execute("SELECT count(*) FROM ledger").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def assert_all_gone(out: Path, timeout: float = 30.0) -> None:
    pids = [p for group in json.loads((out / "state" / "processes.json").read_text()).values() for p in group]
    assert len(pids) >= 7
    poll(lambda: not any(pid_alive(p) for p in pids), timeout, 0.1,
         f"still running: {[p for p in pids if pid_alive(p)]}")


@pytest.mark.slow
def test_ctrl_c_stops_every_process_and_still_reports_what_ran(tmp_path: Path):
    out = tmp_path / "interrupted"
    proc = start_up(out)
    try:
        pids = wait_for_all_started(proc, out)
        assert pids.get("ray"), "Ray plant hosts were not recorded"
        poll(lambda: ledger_rows(out / "state" / "erp-legacy.sqlite") > 0, 120, 0.2, "no posting reached the ERP")
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
        # The drain may take its whole deadline (60 s wall) on a loaded machine when the stack came up late and
        # the edges caught up on a long stretch of scenario time; then every process stops, and the run folder
        # is collected and reported.
        _, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted at" in err
    assert_all_gone(out)
    meta = json.loads((out / "run.json").read_text())
    assert 0 < meta["interrupted_at"] < 10 * 3600 and meta["duration"] == meta["interrupted_at"]
    assert "interrupted" in {e["event"] for e in meta["events"]}
    # The plants stopped producing at the interruption (the run would go on for 10 h): nothing a machine, the
    # MES or the WMS made is later than it, but for the moment the edges took to read it (1 wall second).
    trace = pd.read_parquet(out / "trace.parquet")
    plant_made = trace[trace.source.isin(["PLC", "MES", "WMS"])]
    assert len(plant_made) > 0
    assert plant_made.t_created.max() <= meta["interrupted_at"] + meta["speed"] * 1.0
    sla = json.loads((out / "sla.json").read_text())
    assert sla["invariants"]["duplicates_posted"]["count"] == 0
    assert (out / "trace.parquet").is_file() and (out / "report.html").is_file()


@pytest.mark.slow
def test_a_dying_child_ends_the_run_and_everything_else(tmp_path: Path):
    out = tmp_path / "child-died"
    proc = start_up(out, "--plants", "process")
    try:
        pids = wait_for_all_started(proc, out)
        os.kill(pids["gateway"][-1], signal.SIGKILL)
        _, err = proc.communicate(timeout=90)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert "gateway" in err and "died" in err
    assert_all_gone(out)
