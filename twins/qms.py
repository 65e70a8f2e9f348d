"""The QMS twin: inspects completed lots of items that need it, holds some, releases them later.

Decisions are per lot and vectorised; the timing of hold/release *messages* to the WMS is computed
by the plant (they cross the WAN) and by the integration layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dispositions:
    requires_inspection: np.ndarray  # bool per lot
    held: np.ndarray  # bool per lot
    t_hold: np.ndarray  # NaN unless held
    t_release: np.ndarray  # NaN when no inspection is needed


def disposition(
    t_known: np.ndarray,
    requires_inspection: np.ndarray,
    hold_rate: np.ndarray,
    inspection_time: float,
    hold_duration: float,
    rng: np.random.Generator,
) -> Dispositions:
    """Inspect lots the QMS learned of at ``t_known``; held lots are released after an investigation."""
    n = t_known.size
    done = t_known + rng.exponential(inspection_time, n)
    held = requires_inspection & (rng.random(n) < hold_rate)
    t_hold = np.where(held, done, np.nan)
    t_release = np.where(held, done + rng.exponential(hold_duration, n), done)
    t_release = np.where(requires_inspection, t_release, np.nan)
    return Dispositions(requires_inspection, held, t_hold, t_release)
