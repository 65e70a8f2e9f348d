"""The key lookups of report preparation: the dense-table paths answer exactly as the sort-based ones."""

from __future__ import annotations

import numpy as np
import pytest

from reports.prep import first_index, member, positions


@pytest.mark.parametrize("seed", range(20))
def test_dense_key_lookups_match_numpy(seed):
    rng = np.random.default_rng(seed)
    space = int(rng.integers(1, 500))
    keys = rng.integers(0, space, int(rng.integers(0, 400))).astype(np.int64)
    uniq, first = first_index(keys)
    want_uniq, want_first = np.unique(keys, return_index=True)
    assert np.array_equal(uniq, want_uniq) and np.array_equal(first, want_first)

    values = rng.integers(0, space, int(rng.integers(0, 400))).astype(np.int64)
    assert np.array_equal(member(want_uniq, values), np.isin(want_uniq, values))
    present = values[np.isin(values, want_uniq)]
    assert np.array_equal(positions(want_uniq, present), np.searchsorted(want_uniq, present))


def test_sparse_keys_take_the_sorting_path_with_the_same_answers():
    keys = np.array([5, 10**12, 5, 3, 10**12], dtype=np.int64)  # far too sparse for a table
    assert [a.tolist() for a in first_index(keys)] == [[3, 5, 10**12], [3, 0, 1]]
    assert member(np.array([3, 5, 10**12]), np.array([10**12, 7])).tolist() == [False, False, True]
    assert positions(np.array([3, 5, 10**12]), np.array([10**12, 3])).tolist() == [2, 0]
