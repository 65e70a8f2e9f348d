"""Fixtures shared across the test packages."""

from __future__ import annotations

import pytest
import ray

from actors.remote import ensure_ray


@pytest.fixture(scope="module")
def ray_cluster():
    """An embedded Ray for one test module (two CPUs, bounded object store), shut down after it."""
    started = ensure_ray(num_cpus=2)
    yield
    if started:
        ray.shutdown()
