"""Shared fixtures for the integration tests: one broker per module (or a fresh one per test), gateway
processes, NATS clients, a stand-in ERP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.broker import EmbeddedNats
from live.procs import Service
from tests.integration.gateway_support import CREDENTIALS, start_gateway
from tests.integration.workers_support import ErpStub


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


@pytest.fixture(scope="module")
def gateway(broker: EmbeddedNats, credentials_file: Path) -> Iterator[Service]:
    """One gateway process for the module (rate limit 2000 events/s per plant)."""
    proc = start_gateway(broker, credentials_file)
    yield proc
    proc.stop()
