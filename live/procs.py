"""Child processes of the live engine: start, wait for ``READY``, stop for sure.

Every service runs in its own process group (so a stop or a kill also reaches its own children,
e.g. ``nats-server`` under ``synctwin broker``), is asked to die with its parent (Linux
``PR_SET_PDEATHSIG``) in case the orchestrator itself is killed, and is stopped with SIGTERM, then
SIGKILL after a deadline. A service announces itself with one stdout line ``READY <service> <url>``;
everything it prints goes to ``RUN_DIR/logs/<name>.log``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ProcessError(RuntimeError):
    """A service did not start (exited, or never printed READY); the message points at its log."""


def _with_parent_death_signal(command: list[str]) -> list[str]:
    """Prefix ``setpriv --pdeathsig TERM`` when available: the child is then terminated if this
    process dies without cleaning up (the signal survives exec). It fires when the *thread* that
    started the child exits, so services are always launched from the orchestrator's main thread."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", *command] if setpriv else command


def python_module(module: str, *args: str) -> list[str]:
    """Command line running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


@dataclass
class Service:
    """One child process. ``start()`` returns the URL from its READY line."""

    name: str
    command: list[str]
    log_dir: Path
    ready_timeout: float = 60.0
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    url: str = ""
    pids: list[int] = field(default_factory=list)  # every pid this service ever had (restarts)
    _ready: threading.Event = field(default_factory=threading.Event)
    _reader: threading.Thread | None = None

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, command: Sequence[str] | None = None) -> str:
        """Launch (or relaunch with ``command``) and wait for READY; raise ProcessError otherwise."""
        self.launch(command)
        return self.wait_ready()

    def launch(self, command: Sequence[str] | None = None) -> None:
        """Start the process without waiting for READY."""
        if command is not None:
            self.command = list(command)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")]))
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the reader thread
        log.write(f"--- start {time.strftime('%H:%M:%S')}: {' '.join(self.command)}\n".encode())
        log.flush()
        self._ready.clear()
        self.url = ""
        self.proc = subprocess.Popen(
            _with_parent_death_signal(self.command), stdout=subprocess.PIPE, stderr=log,
            stdin=subprocess.DEVNULL, cwd=PROJECT_ROOT, env=env, start_new_session=True,
        )
        self.pids.append(self.proc.pid)
        self._reader = threading.Thread(target=self._read, args=(self.proc, log), daemon=True)
        self._reader.start()

    def wait_ready(self) -> str:
        """Block until the READY line; stop the process and raise ProcessError if it never comes."""
        assert self.proc is not None, "launch() first"
        deadline = time.monotonic() + self.ready_timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                why = (f"exited with code {self.proc.returncode}" if self.proc.poll() is not None
                       else f"printed no READY line within {self.ready_timeout:.0f} s")
                self.stop(timeout=2.0)
                raise ProcessError(f"{self.name} {why}; see {self.log_path}:\n{self.tail()}")
        return self.url

    def _read(self, proc: subprocess.Popen, log) -> None:
        with log:
            for raw in proc.stdout:
                log.write(raw)
                log.flush()
                line = raw.decode(errors="replace").strip()
                if line.startswith("READY ") and not self._ready.is_set():
                    parts = line.split()
                    self.url = parts[2] if len(parts) > 2 else ""
                    self._ready.set()

    def tail(self, lines: int = 15) -> str:
        """The last lines of the service's log."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the service's whole process group."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the whole group at once (fault injection) and reap it."""
        if self.proc is None:
            return
        self.signal_group(signal.SIGKILL)
        self.proc.wait()
        self._join_reader()

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the group, SIGKILL it after ``timeout`` seconds; return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.proc.wait()
        # Grandchildren that outlived the leader (same group) get the same treatment.
        self.signal_group(signal.SIGKILL)
        self._join_reader()
        return self.proc.returncode

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=2.0)


@dataclass
class ServiceSet:
    """The services of one run, stopped in reverse start order, always (use as a context manager)."""

    log_dir: Path
    services: dict[str, Service] = field(default_factory=dict)

    def start(self, name: str, command: list[str], ready_timeout: float = 60.0) -> Service:
        """Start a service (registered before it starts, so a failed start is still cleaned up)."""
        service = Service(name, command, self.log_dir, ready_timeout)
        self.services[name] = service
        service.start()
        return service

    def start_many(self, specs: dict[str, list[str]], ready_timeout: float = 60.0) -> dict[str, Service]:
        """Start several services at once and wait for all their READY lines (parallel startup)."""
        launched = {n: Service(n, cmd, self.log_dir, ready_timeout) for n, cmd in specs.items()}
        self.services.update(launched)
        for service in launched.values():
            service.launch()
        for service in launched.values():
            service.wait_ready()
        return launched

    def __getitem__(self, name: str) -> Service:
        return self.services[name]

    def __iter__(self) -> Iterator[Service]:
        return iter(self.services.values())

    def dead(self) -> list[Service]:
        """Services that exited on their own."""
        return [s for s in self.services.values() if s.proc is not None and s.proc.poll() is not None]

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every service, newest first; never raises."""
        for service in reversed(list(self.services.values())):
            with contextlib.suppress(Exception):
                service.stop(timeout)

    def all_pids(self) -> list[int]:
        return [pid for s in self.services.values() for pid in s.pids]

    def __enter__(self) -> ServiceSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
