"""Student-t table, mean and CI, percentiles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reports.stats import mean_ci, percentile, t_quantile_975


@pytest.mark.parametrize(("df", "expected"), [(1, 12.706), (2, 4.303), (10, 2.228), (30, 2.042), (60, 2.000)])
def test_t_quantile_matches_table(df: int, expected: float) -> None:
    assert t_quantile_975(df) == pytest.approx(expected, abs=1e-3)


def test_t_quantile_decreases_towards_normal() -> None:
    values = [t_quantile_975(d) for d in (31, 45, 80, 200, 10_000)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    assert 1.96 < values[-1] < 1.962
    assert t_quantile_975(50) == pytest.approx(2.009, abs=0.003)  # table value 2.009


def test_t_quantile_rejects_zero_df() -> None:
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile_975(0)


def test_mean_ci_of_three_values() -> None:
    ci = mean_ci([1.0, 2.0, 3.0])
    half = 4.303 * 1.0 / math.sqrt(3)
    assert ci["mean"] == pytest.approx(2.0)
    assert ci["ci_low"] == pytest.approx(2.0 - half, rel=1e-4)
    assert ci["ci_high"] == pytest.approx(2.0 + half, rel=1e-4)
    assert ci["n"] == 3


def test_mean_ci_single_and_empty() -> None:
    assert mean_ci([5.0]) == {"mean": 5.0, "ci_low": None, "ci_high": None, "n": 1}
    assert mean_ci([float("nan"), None])["mean"] is None  # type: ignore[list-item]


def test_percentile_names() -> None:
    values = np.arange(1, 101, dtype=float)
    assert percentile(values, "max") == 100.0
    assert percentile(values, "p50") == pytest.approx(50.5)
    assert percentile(values, "p95") == pytest.approx(np.percentile(values, 95))
    assert math.isnan(percentile(np.array([]), "p95"))
