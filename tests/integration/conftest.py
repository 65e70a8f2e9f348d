"""Shared fixtures for the integration tests: one broker per module (or a fresh one per test), gateway
processes, NATS clients, a stand-in ERP."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import nats
import pytest

from integration.broker import EVENTS_STREAM, EmbeddedNats, read_messages
from live.procs import Service
from tests.integration.workers_support import ErpStub
from tests.polling import poll

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


@pytest.fixture(scope="session")
def kit() -> SimpleNamespace:
    """This conftest's functions (poll, read_stream, start_gateway ...) for test modules."""
    return SimpleNamespace(poll=poll, read_stream=read_stream, service_command=service_command,
                           start_gateway=start_gateway, credentials=CREDENTIALS)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNats]:
    """One JetStream server for the whole test module."""
    server = EmbeddedNats(tmp_path_factory.mktemp("nats"), die_with_parent=True)  # no orphan if pytest dies
    server.start()
    yield server
    server.stop()


@pytest.fixture
def jetstream(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A JetStream server of its own for one test: empty streams, no consumer yet (the worker tests)."""
    with EmbeddedNats(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def erp() -> Iterator[ErpStub]:
    """A stand-in ERP on 127.0.0.1 for one test (see ``ErpStub`` for what it can be told to do)."""
    with ErpStub() as stub:
        yield stub


@pytest.fixture(scope="module")
def credentials_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("state") / "credentials.json"
    path.write_text(json.dumps(CREDENTIALS))
    return path


def start_gateway(broker: EmbeddedNats, credentials: Path, *extra: str,
                  env: dict[str, str] | None = None, log_dir: Path | None = None) -> Service:
    """A gateway process on a free port, connected to ``broker``; its log goes to ``log_dir``."""
    proc = Service("gateway", service_command("gateway", "--nats", broker.url, "--credentials", str(credentials),
                                              "--epoch", str(time.time()), "--speed", "60", *extra),
                   log_dir or credentials.parent, env=env or {})
    proc.start()
    return proc


@pytest.fixture(scope="module")
def gateway(broker: EmbeddedNats, credentials_file: Path) -> Iterator[Service]:
    """One gateway process for the module (rate limit 2000 events/s per plant)."""
    proc = start_gateway(broker, credentials_file)
    yield proc
    proc.stop()
