"""What the gateway and broker tests share: credentials, service command lines, a gateway process, a stream
read. Plain helpers (the fixtures built on them are in ``conftest.py``)."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import nats

from integration.broker import EVENTS_STREAM, EmbeddedNats, read_messages
from live.procs import Service

CREDENTIALS = {"admin": "admin-key", "plants": {"P01": "key-p01", "P02": "key-p02", "P03": "key-p03"}}


def service_command(*args: str) -> list[str]:
    """The command line of a live service run from this interpreter."""
    return [sys.executable, "-m", "synctwin.commands.live_services", *args]


def read_stream(url: str, subject: str = "events.>", stream: str = EVENTS_STREAM) -> list[Any]:
    """Every message on ``subject``, read by a brand-new consumer over a brand-new connection."""

    async def run() -> list[Any]:
        nc = await nats.connect(url)
        try:
            return await read_messages(nc.jetstream(), stream, subject)
        finally:
            await nc.close()

    return asyncio.run(run())


def start_gateway(broker: EmbeddedNats, credentials: Path, *extra: str,
                  env: dict[str, str] | None = None, log_dir: Path | None = None) -> Service:
    """A gateway process on a free port, connected to ``broker``; its log goes to ``log_dir``."""
    proc = Service("gateway", service_command("gateway", "--nats", broker.url, "--credentials", str(credentials),
                                              "--epoch", str(time.time()), "--speed", "60", *extra),
                   log_dir or credentials.parent, env=env or {})
    proc.start()
    return proc
