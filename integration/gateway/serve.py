"""The READY protocol, service side: serve an ASGI app on 127.0.0.1 announcing ``READY <name> <url>``.

The client side (start a child, wait for that line, stop it for sure) is :class:`live.procs.Service`."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from typing import Any

import uvicorn

from integration.gc_tuning import tune_gc


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
    tune_gc()
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
