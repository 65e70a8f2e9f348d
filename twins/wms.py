"""The WMS twin: material issues to lines, inventory movements, and shipments of finished lots.

A lot ships when the warehouse plans it, but with the quality gate on a lot that needs inspection
ships only once its release has reached the WMS, so a held lot can never leave.
"""

from __future__ import annotations

import numpy as np


def poisson_times(rate: float, t_from: float, t_to: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted arrival times of a Poisson process of ``rate`` per second in [t_from, t_to)."""
    if rate <= 0 or t_to <= t_from:
        return np.empty(0)
    n = rng.poisson(rate * (t_to - t_from))
    return np.sort(rng.uniform(t_from, t_to, n))


def ship_times(
    t_completed: np.ndarray,
    requires_inspection: np.ndarray,
    t_hold_at_wms: np.ndarray,
    t_release_at_wms: np.ndarray,
    ship_delay: float,
    quality_gate: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    """When each lot ships (NaN: waits for a release that has not come)."""
    return ship_planned(plan_times(t_completed, ship_delay, rng), requires_inspection, t_hold_at_wms,
                        t_release_at_wms, quality_gate)


def plan_times(t_completed: np.ndarray, ship_delay: float, rng: np.random.Generator) -> np.ndarray:
    """When the warehouse plans to ship each completed lot (an exponential ``ship_delay`` after completion)."""
    return t_completed + rng.exponential(ship_delay, t_completed.size) if ship_delay else t_completed.copy()


def ship_planned(
    planned: np.ndarray,
    requires_inspection: np.ndarray,
    t_hold_at_wms: np.ndarray,
    t_release_at_wms: np.ndarray,
    quality_gate: bool,
) -> np.ndarray:
    """When each lot planned to ship at ``planned`` ships (NaN: waits for a release that has not come)."""
    if quality_gate:
        # Positive release: inspected lots wait for their release at the WMS.
        gated = np.fmax(planned, t_release_at_wms)
        return np.where(requires_inspection, np.where(np.isnan(t_release_at_wms), np.nan, gated), planned)
    # No gate: the WMS ships on plan unless a hold reached it first; then it waits for the release.
    blocked = t_hold_at_wms <= planned
    return np.where(blocked, np.where(np.isnan(t_release_at_wms), np.nan, np.fmax(planned, t_release_at_wms)), planned)


def refusal_times(
    planned: np.ndarray,
    requires_inspection: np.ndarray,
    t_hold_at_wms: np.ndarray,
    t_release_at_wms: np.ndarray,
    quality_gate: bool,
) -> np.ndarray:
    """When the WMS refuses to ship each lot because its hold reached the WMS first (NaN: never refused).

    The attempt is refused once: at the plan when the hold was there already; with the quality gate an
    inspected lot waits past its plan, so a hold arriving later is refused on arrival. A release that reached
    the WMS by then lets the lot go instead (the live WMS's rule, ``live/plant_wms.py``)."""
    waiting = quality_gate & requires_inspection
    attempt = np.where(waiting, np.fmax(planned, t_hold_at_wms), planned)
    on_hold = (t_hold_at_wms <= attempt) & ~(t_release_at_wms <= attempt)
    return np.where(on_hold, attempt, np.nan)
