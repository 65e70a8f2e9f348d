"""The READY protocol: serve an ASGI app on 127.0.0.1 announcing ``READY <name> <url>``, and start
such a service as a child process waiting for that line (:class:`ServiceProcess`)."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from integration.broker import kill_with_parent


class _AnnouncingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, ready_line: str):
        super().__init__(config)
        self.ready_line = ready_line

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(self.ready_line, flush=True)


def bind(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """A listening TCP socket (port 0 picks a free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(app: Any, name: str, port: int = 0, host: str = "127.0.0.1", log_level: str = "warning") -> None:
    """Serve ``app`` until SIGTERM/SIGINT (graceful: lifespan shutdown runs), with uvloop + httptools."""
    sock = bind(port, host)
    url = f"http://{host}:{sock.getsockname()[1]}"
    config = uvicorn.Config(app, loop="uvloop", http="httptools", log_level=log_level, access_log=False,
                            lifespan="on", timeout_graceful_shutdown=5, backlog=2048)
    server = _AnnouncingServer(config, f"READY {name} {url}")
    # uvicorn re-raises the stop signal after its graceful shutdown; a no-op handler turns that into exit 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run(sockets=[sock])
    sys.stdout.flush()


def serve_workers(factory: str, name: str, workers: int, port: int = 0, host: str = "127.0.0.1",
                  env: dict[str, str] | None = None, log_level: str = "warning") -> None:
    """Serve the app built by the import string ``factory`` in ``workers`` processes sharing one socket.

    Settings reach the workers through ``env`` (set before they are spawned). ``READY`` is printed once
    the first worker answers ``/health``.
    """
    from uvicorn.supervisors import Multiprocess

    os.environ.update(env or {})
    sock = bind(port, host)
    url = f"http://{host}:{sock.getsockname()[1]}"
    config = uvicorn.Config(factory, factory=True, workers=workers, loop="uvloop", http="httptools",
                            log_level=log_level, access_log=False, lifespan="on", timeout_graceful_shutdown=5,
                            backlog=2048)
    supervisor = Multiprocess(config, sockets=[sock])

    def announce() -> None:
        import urllib.request

        while not supervisor.should_exit.is_set():
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1) as reply:
                    if reply.status == 200:
                        print(f"READY {name} {url}", flush=True)
                        return
            except OSError:
                pass
            time.sleep(0.05)

    threading.Thread(target=announce, daemon=True).start()
    supervisor.run()


class ServiceProcess:
    """A service started as a child process, waited on until it prints ``READY <name> <url>``.

    The client side of the READY protocol, for tests, benchmarks and orchestration.
    """

    def __init__(self, args: list[str], name: str, env: dict[str, str] | None = None,
                 log: Path | None = None, timeout_s: float = 30.0, die_with_parent: bool = False):
        self.args = args
        self.die_with_parent = die_with_parent  # Linux: SIGKILL the child when the starting thread dies
        self.name = name
        self.env = env
        self.log = log
        self.timeout_s = timeout_s
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> str:
        """Start the process and return the URL it announced; raise RuntimeError on timeout or exit."""
        env = {**os.environ, **(self.env or {})}
        stderr = open(self.log, "a") if self.log else subprocess.DEVNULL  # noqa: SIM115 - kept for the child
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env,
                                     stdin=subprocess.DEVNULL,
                                     preexec_fn=kill_with_parent if self.die_with_parent else None)
        lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:  # keep reading so the child never blocks on a full pipe
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                raise RuntimeError(f"{self.name} exited with code {self.proc.wait()} before READY "
                                   f"(see {self.log or 'its stderr'})")
            parts = line.split()
            if len(parts) == 3 and parts[0] == "READY" and parts[1] == self.name:
                self.url = parts[2]
                return self.url
        self.kill()
        raise RuntimeError(f"{self.name} did not print READY within {self.timeout_s:.0f} s")

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout_s``); return the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
