"""A live run's chain load replayed: the factor on the chain hops' draws at each scenario time.

A live run at speed 60 lasts minutes of wall time, and what else the machine runs meanwhile makes its chain
faster or slower from one wall second to the next. The hops' fitted distributions hold over the whole run;
``landscape.integration.replay_load`` (set by ``synctwin run --calibration`` at the live run's speed, from
``virtual.calibration_load``) says how much busier or quieter than that the chain was in each bin of scenario
time, so that a flow measured over part of the run (or over postings a fault held back for part of it) sees the
load the live one saw.
"""

from __future__ import annotations

import numpy as np

from scenarios.spec import LoadReplaySpec


def load_factor(spec: LoadReplaySpec, t: np.ndarray) -> np.ndarray:
    """Per scenario time in ``t``, the factor on a chain hop's draw there (1 outside the replayed bins)."""
    t = np.asarray(t, dtype=float)
    if not spec.factors:
        return np.ones(t.shape)
    factors = np.append(np.asarray(spec.factors, dtype=float), 1.0)
    bins = np.floor(np.nan_to_num(t, nan=-1.0) / spec.bin)
    inside = (bins >= 0) & (bins < len(spec.factors))
    return factors[np.where(inside, bins, len(spec.factors)).astype(np.int64)]
