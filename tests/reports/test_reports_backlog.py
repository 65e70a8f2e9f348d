"""Backlog curves and the recovery-time definition."""

from __future__ import annotations

import numpy as np
import pytest

from reports import backlog as bl


def test_backlog_counts_open_intervals() -> None:
    starts = np.array([0.0, 10.0, 20.0, np.nan])
    ends = np.array([15.0, np.inf, 25.0, 30.0])
    grid = np.array([0.0, 12.0, 15.0, 22.0, 30.0])
    assert bl.backlog_at(starts, ends, grid).tolist() == [1, 2, 1, 2, 1]


def test_recovery_is_exact_to_the_completion() -> None:
    # Steady: one txn in flight at a time; fault 1000..2000 queues 100, drained one per 2 s after it.
    starts = np.concatenate([np.arange(0, 4000, 10.0), np.linspace(1000, 1990, 100)])
    ends = np.concatenate([np.arange(0, 4000, 10.0) + 1.0, 2000.0 + 2.0 * np.arange(1, 101)])
    steady = (starts[:400] < 1000) | (starts[:400] >= 2000)
    starts = np.concatenate([starts[:400][steady], starts[400:]])
    ends = np.concatenate([ends[:400][steady], ends[400:]])
    grid = bl.time_grid(4000.0, 10.0)
    curve = bl.backlog_at(starts, ends, grid)
    fault = {"start": 1000.0, "end": 2000.0}
    res = bl.recovery(curve, grid, fault, [fault], starts, ends)
    assert res["recovered"]
    # threshold = 1.2 * median(0 or 1) + 5 -> the queue must fall to <= 5 (or 6.2): 95 of 100 done.
    assert res["threshold"] in (5.0, 6.2)
    assert res["seconds"] == pytest.approx(2.0 * (100 - int(res["threshold"])), abs=2.0)
    assert res["peak_backlog"] >= 99


def test_never_recovered_reports_a_lower_bound() -> None:
    grid = bl.time_grid(1000.0, 10.0)
    curve = np.where(grid >= 500, 100, 0)
    fault = {"start": 500.0, "end": 600.0}
    res = bl.recovery(curve, grid, fault, [fault])
    assert not res["recovered"]
    assert res["seconds"] is None
    assert res["lower_bound"] == pytest.approx(400.0)


def test_routine_bursts_are_normal_so_a_bursty_load_recovers() -> None:
    # An edge posts 30 events every 300 s, each burst delivered within 60 s; a fault keeps 100 waiting
    # from 3600 to 4000 s, and after it ends at 3900 s the routine bursts go on.
    grid = bl.time_grid(7200.0, 10.0)
    curve = np.where(grid % 300 < 60, 30, 0)
    curve = np.where((grid >= 3600) & (grid < 4000), 100, curve)
    fault = {"start": 3600.0, "end": 3900.0}
    res = bl.recovery(curve, grid, fault, [fault])
    assert res["recovered"] and res["threshold"] >= 30  # the bursts are part of normal
    assert res["seconds"] == pytest.approx(100.0, abs=10.0)


def test_a_fault_cut_short_by_the_next_one_is_not_measured_on_its_own() -> None:
    grid = bl.time_grid(3000.0, 10.0)
    curve = np.where((grid >= 1000) & (grid < 2000), 80, 0)
    first, second = {"start": 1000.0, "end": 1100.0}, {"start": 1300.0, "end": 1400.0}
    res = bl.recovery(curve, grid, first, [first, second])
    assert not res["recovered"] and res["next_fault_first"]
    assert res["lower_bound"] == pytest.approx(200.0)
    later = bl.recovery(curve, grid, second, [first, second])
    assert later["recovered"] and not later["next_fault_first"]
    assert later["seconds"] == pytest.approx(600.0, abs=10.0)


def test_fault_windows_accept_start_end_or_at_duration() -> None:
    meta = {"faults": [{"kind": "erp_outage", "start": 10, "end": 70}, {"kind": "wan_outage", "at": 5,
                                                                         "duration": 30}]}
    windows = bl.fault_windows(meta)
    assert [(w["start"], w["end"]) for w in windows] == [(10.0, 70.0), (5.0, 35.0)]
