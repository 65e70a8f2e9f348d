"""Fixtures shared across the test packages."""

from __future__ import annotations

import os

import pytest
import ray
from hypothesis import settings

from actors.runtime import ensure_ray


@pytest.fixture(scope="module")
def ray_cluster():
    """An embedded Ray for one test module (two CPUs, bounded object store), shut down after it."""
    started = ensure_ray(num_cpus=2)
    yield
    if started:
        ray.shutdown()


# CI runs property tests on a fixed example sequence (reproducible verdicts); locally they explore.
settings.register_profile("ci", derandomize=True, deadline=None)
if os.environ.get("CI"):
    settings.load_profile("ci")
