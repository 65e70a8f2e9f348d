"""Fixtures: synthetic run folders with known answers (see reports_fixture_run.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reports.reports_fixture_run import Expected, build_run


@pytest.fixture
def faulty_run(tmp_path: Path) -> tuple[Path, Expected]:
    """A run with an outage, one lost + one edge-dropped txn, one duplicate posting, one held lot shipped."""
    return build_run(tmp_path)


@pytest.fixture
def clean_run(tmp_path: Path) -> tuple[Path, Expected]:
    """The same outage, but nothing lost, duplicated or shipped while held: every SLA holds."""
    return build_run(tmp_path, lost=False, duplicate=False, held_shipped=False, run_id="clean-run")
