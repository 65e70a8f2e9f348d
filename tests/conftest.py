"""Fixtures shared across the test packages.

How the tests share things: fixtures live in ``conftest.py`` files (this one, or the package's own);
plain helpers (functions, constants, stand-in servers) live in helper modules that are not test
modules -- ``tests/polling.py``, ``tests/integration/workers_support.py`` -- imported by their
``tests.`` path. No test module imports from another test module, nor from a conftest."""

from __future__ import annotations

import os

import pytest
import ray
from hypothesis import settings

from actors.runtime import ensure_ray


@pytest.fixture
def anyio_backend() -> str:
    """Tests marked ``anyio`` run on asyncio (the loop every service here runs on)."""
    return "asyncio"


@pytest.fixture(scope="module")
def ray_cluster():
    """An embedded Ray for one test module (two CPUs, bounded object store), shut down after it."""
    started = ensure_ray(num_cpus=2)
    yield
    if started:
        ray.shutdown()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the files holding slow tests first, keeping the order inside each file: ``make test`` spreads
    the tests over two workers, and a long test started last would leave the other worker idle at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: file order and test order kept


# CI runs property tests on a fixed example sequence (reproducible verdicts); locally they explore.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
