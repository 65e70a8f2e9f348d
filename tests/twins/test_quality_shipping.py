"""QMS dispositions and WMS shipments: held lots never ship before release with the quality gate."""

from __future__ import annotations

import numpy as np
import pytest

from twins.qms import disposition
from twins.wms import poisson_times, refusal_times, ship_planned, ship_times


def test_held_share_follows_hold_rate_and_only_inspected_lots_are_held():
    rng = np.random.default_rng(1)
    n = 20000
    inspect = rng.random(n) < 0.5
    result = disposition(np.sort(rng.uniform(0, 1e5, n)), inspect, np.full(n, 0.2), 1200.0, 7200.0, rng)
    assert not result.held[~inspect].any()
    assert result.held[inspect].mean() == pytest.approx(0.2, abs=0.015)
    assert np.isnan(result.t_release[~inspect]).all()
    assert np.isnan(result.t_hold[~result.held]).all()
    assert not np.isnan(result.t_release[inspect]).any()


def test_hold_and_release_times_are_ordered():
    rng = np.random.default_rng(2)
    n = 5000
    t_known = rng.uniform(0, 1e4, n)
    result = disposition(t_known, np.ones(n, bool), np.full(n, 0.3), 600.0, 3600.0, rng)
    held = result.held
    assert np.all(result.t_hold[held] >= t_known[held])
    assert np.all(result.t_release[held] >= result.t_hold[held])
    # Lots released without a hold are released when their inspection ends.
    assert (result.t_release[~held] - t_known[~held]).mean() == pytest.approx(600.0, rel=0.1)
    assert (result.t_release[held] - result.t_hold[held]).mean() == pytest.approx(3600.0, rel=0.1)


def test_zero_hold_rate_holds_nothing():
    rng = np.random.default_rng(3)
    result = disposition(np.arange(100.0), np.ones(100, bool), np.zeros(100), 60.0, 60.0, rng)
    assert not result.held.any()


def _lots(n: int, seed: int):
    """Inspected lots with random disposition, hold and release messages arriving at the WMS."""
    rng = np.random.default_rng(seed)
    t_completed = np.sort(rng.uniform(0, 1e5, n))
    inspect = rng.random(n) < 0.7
    result = disposition(t_completed, inspect, np.full(n, 0.3), 1800.0, 7200.0, rng)
    wan = 0.04
    return t_completed, inspect, result, result.t_hold + wan, result.t_release + wan, rng


def test_with_quality_gate_no_held_lot_ships_before_its_release_reaches_the_wms():
    t_completed, inspect, result, hold_at, release_at, rng = _lots(5000, 4)
    ship = ship_times(t_completed, inspect, hold_at, release_at, 3600.0, True, rng)
    inspected = inspect & ~np.isnan(ship)
    assert np.all(ship[inspected] >= release_at[inspected])
    assert np.all(ship[result.held] >= result.t_release[result.held])
    assert np.all(ship >= t_completed)
    # Lots without inspection ship on plan (after completion, exponential delay around ship_delay).
    free = ~inspect
    assert (ship[free] - t_completed[free]).mean() == pytest.approx(3600.0, rel=0.1)


def test_with_quality_gate_a_lot_whose_release_never_came_does_not_ship():
    rng = np.random.default_rng(5)
    ship = ship_times(np.array([0.0, 0.0]), np.array([True, False]), np.array([np.nan, np.nan]),
                      np.array([np.nan, np.nan]), 100.0, True, rng)
    assert np.isnan(ship[0]) and ship[1] >= 0.0


def test_without_gate_a_hold_arriving_after_the_planned_shipment_lets_a_held_lot_ship():
    rng = np.random.default_rng(6)
    # Lot 0: planned to ship at once, hold reaches the WMS only at 500 -> ships while held.
    # Lot 1: hold reaches the WMS first -> waits for the release at 900.
    ship = ship_times(np.array([0.0, 0.0]), np.array([True, True]), np.array([500.0, -1.0]),
                      np.array([900.0, 900.0]), 0.0, False, rng)
    assert ship[0] == 0.0 and ship[0] < 900.0
    assert ship[1] == 900.0


def test_without_gate_some_held_lots_ship_before_release_on_random_lots():
    t_completed, inspect, result, hold_at, release_at, rng = _lots(5000, 7)
    ship = ship_times(t_completed, inspect, hold_at, release_at, 600.0, False, rng)
    violated = result.held & (ship < result.t_release)
    assert violated.sum() > 0
    # ...and only lots whose hold arrived after their ship time.
    assert np.all(hold_at[violated] > ship[violated])


def test_poisson_times_are_sorted_inside_the_interval_with_the_right_count():
    rng = np.random.default_rng(8)
    t = poisson_times(0.5, 100.0, 10100.0, rng)
    assert np.all(np.diff(t) >= 0)
    assert np.all((t >= 100.0) & (t < 10100.0))
    assert t.size == pytest.approx(5000, abs=300)
    assert poisson_times(0.0, 0.0, 10.0, rng).size == 0
    assert poisson_times(1.0, 10.0, 10.0, rng).size == 0


def test_refusals_happen_at_the_attempt_when_the_hold_is_there_and_no_release_yet():
    planned = np.array([100.0, 100.0, 100.0, 100.0, 100.0])
    inspect = np.array([True, True, True, True, False])
    hold_at = np.array([50.0, 300.0, 50.0, np.nan, np.nan])
    release_at = np.array([900.0, 900.0, 80.0, 400.0, np.nan])
    # Without the gate: refused at the plan only if the hold came first and no release (lots 0; lot 2 released).
    off = refusal_times(planned, inspect, hold_at, release_at, False)
    assert off[0] == 100.0 and np.isnan(off[1:]).all()
    # With it an inspected lot waits past its plan, so the hold arriving at 300 is refused on arrival.
    on = refusal_times(planned, inspect, hold_at, release_at, True)
    assert on[0] == 100.0 and on[1] == 300.0 and np.isnan(on[2:]).all()
    # ... and the lots refused ship after that, at their release.
    ship = ship_planned(planned, inspect, hold_at, release_at, True)
    assert (ship[:2] == 900.0).all() and ship[2] == 100.0
