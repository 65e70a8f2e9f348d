"""Small statistics: percentiles, the Student-t quantile and a mean with its 95 % confidence interval."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Two-sided 95 % Student-t critical values t(0.975, df) for df = 1..30 (standard table values).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)
# Beyond the table: anchor points interpolated linearly in 1/df, which is how the curve behaves.
_T975_TAIL = ((30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980), (math.inf, 1.960))

PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0, "max": 100.0}


def t_quantile_975(df: int) -> float:
    """Critical value of Student's t for a two-sided 95 % interval with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("degrees of freedom must be >= 1")
    if df <= 30:
        return _T975[df - 1]
    for (d0, t0), (d1, t1) in zip(_T975_TAIL, _T975_TAIL[1:], strict=False):
        if d0 <= df <= d1:
            x0, x1, x = 1 / d0, (0.0 if math.isinf(d1) else 1 / d1), 1 / df
            return t0 + (t1 - t0) * (x0 - x) / (x0 - x1)
    return 1.960


def mean_ci(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean of the finite ``values`` and its 95 % t interval (``None`` bounds with fewer than 2 values)."""
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return {"mean": None, "ci_low": None, "ci_high": None, "n": 0}
    mean = float(arr.mean())
    if arr.size < 2:
        return {"mean": mean, "ci_low": None, "ci_high": None, "n": 1}
    half = t_quantile_975(arr.size - 1) * float(arr.std(ddof=1)) / math.sqrt(arr.size)
    return {"mean": mean, "ci_low": mean - half, "ci_high": mean + half, "n": int(arr.size)}


def percentile(values: np.ndarray, name: str) -> float:
    """``p50``/``p95``/``p99``/``max`` of ``values`` (NaN when empty); linear interpolation."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan
    return float(np.max(values)) if name == "max" else float(np.percentile(values, PERCENTILES[name]))


def none_if_nan(value: float | None) -> float | None:
    """JSON-friendly: NaN/inf become ``None``."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)
