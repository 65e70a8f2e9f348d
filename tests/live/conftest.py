"""Fixtures shared by the live-engine tests."""

from __future__ import annotations

import time

import pytest

from live.plant_host import PlantHost
from tests.live.opcua_support import scenario


@pytest.fixture(scope="module")
def secure_host(tmp_path_factory):
    """A secured plant OPC UA server (user, password, Basic256Sha256) and its run folder."""
    run_dir = tmp_path_factory.mktemp("secure-run")
    host = PlantHost(scenario(), "P01", run_dir, epoch=time.time(), speed=600, insecure=False)
    host.start()
    yield host, run_dir
    host.stop()
