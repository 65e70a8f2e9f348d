"""Process helpers of the live stack: READY handshake, process groups, stop/kill, nothing left over."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from live.procs import ProcessError, Service, ServiceSet, pid_alive
from tests.polling import poll

# A service that starts a grandchild in its own group, announces itself and ignores SIGTERM when asked.
CHILD = r"""
import signal, subprocess, sys
grandchild = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
print("pid", grandchild.pid, flush=True)
if "stubborn" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("READY demo http://127.0.0.1:9", flush=True)
while True:
    signal.pause()
"""


def wait_gone(pids: list[int], timeout: float = 10.0) -> None:
    poll(lambda: not any(pid_alive(p) for p in pids), timeout, 0.02, f"still alive after {timeout} s: {pids}")


def grandchild_pid(service: Service) -> int:
    for line in service.log_path.read_text().splitlines():
        if line.startswith("pid "):
            return int(line.split()[1])
    raise AssertionError("child did not report its grandchild")


@pytest.mark.parametrize("mode", ["polite", "stubborn"])
def test_stop_reaches_the_whole_group(tmp_path: Path, mode: str):
    service = Service("demo", [sys.executable, "-c", CHILD, mode], tmp_path, ready_timeout=20)
    assert service.start() == "http://127.0.0.1:9"
    pids = [service.pid, grandchild_pid(service)]
    assert all(pid_alive(p) for p in pids)
    started = time.monotonic()
    service.stop(timeout=1.0)
    wait_gone(pids)
    assert time.monotonic() - started < 5.0


def test_kill_and_restart_keeps_every_pid(tmp_path: Path):
    with ServiceSet(tmp_path) as services:
        service = services.start("demo", [sys.executable, "-c", CHILD])
        first = [service.pid, grandchild_pid(service)]
        service.kill()
        wait_gone(first)
        service.start()
        assert service.pid not in first and len(services.all_pids()) == 2
        second = service.pid
    wait_gone([second])


def test_failed_start_names_the_log_and_leaves_nothing(tmp_path: Path):
    code = "import sys; print('boom: bad --port', file=sys.stderr); sys.exit(3)"
    services = ServiceSet(tmp_path)
    with pytest.raises(ProcessError, match="exited with code 3") as err:
        services.start_many({"bad": [sys.executable, "-c", code]}, ready_timeout=10)
    assert "boom: bad --port" in str(err.value) and "bad.log" in str(err.value)
    services.stop_all()
    wait_gone(services.all_pids())


def test_missing_ready_line_times_out(tmp_path: Path):
    service = Service("mute", [sys.executable, "-c", "import signal; signal.pause()"], tmp_path, ready_timeout=0.5)
    with pytest.raises(ProcessError, match="no READY line"):
        service.start()
    wait_gone(service.pids)
