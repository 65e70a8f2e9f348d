"""Derived tables shared by SLA evaluation, invariants, KPIs and charts, built once per run.

Every transaction is identified by an integer key ``replication * n_ids + code(txn_id)`` so joins
between trace and ledger are numpy set operations instead of string merges (fleet traces hold
~1.5 M rows). Hot paths select rows from narrow frames or numpy arrays: copying all 20 trace
columns for each selection was the dominant cost on fleet-size runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kernel.trace import (
    DEAD_LETTERED,
    DELIVERED,
    ERP_POSTING_FLOWS,
    IN_FLIGHT,
    ORDER_RELEASE,
    REASON_EDGE_OVERFLOW,
    REASON_LOT_ON_HOLD,
    REJECTED,
)
from reports.runfolder import RunData

# Targets that are not the ERP: a flow fanning out to these is not an ERP posting for that row.
_NON_ERP_TARGETS = ("mes", "wms", "qms", "analytics", "maintenance")
HOP_COLUMNS = ["t_created", "t_edge", "t_broker", "t_delivered", "t_acked"]
_NARROW = ["key", "replication", "txn_id", "flow", "plant", "target", "item", "qty", "t_created", "t_delivered",
           "latency", "posting"]


@dataclass
class Prepared:
    """A run's trace with keys and flags, plus per-transaction tables."""

    run: RunData
    trace: pd.DataFrame  # the run's trace + key, posting, latency, last_hop (columns added in place)
    ledger: pd.DataFrame  # + key
    postings: pd.DataFrame  # one row per ERP-posting source txn (replication, txn_id)
    first_delivered: pd.DataFrame  # first delivered copy per key, all flows (narrow)
    first_rows: pd.DataFrame  # first row per key, all flows (narrow + hops + outcome)
    n_reps: int

    def reps(self) -> range:
        """Replication numbers 0..R-1."""
        return range(self.n_reps)


def text_lower(series: pd.Series) -> np.ndarray:
    """Lower-case text of a (categorical) column without a per-row Python loop."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = np.asarray([str(c).lower() for c in series.cat.categories] + [""], dtype=object)
        codes = series.cat.codes.to_numpy()
        return cats[np.where(codes < 0, len(cats) - 1, codes)]
    return series.fillna("").astype(str).str.lower().to_numpy()


def map_text(series: pd.Series, fn: Callable[[str], str]) -> np.ndarray:
    """Apply ``fn`` to a text column: once per category for categoricals, per value otherwise."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = np.asarray([fn(str(c)) for c in series.cat.categories] + [fn("")], dtype=object)
        codes = series.cat.codes.to_numpy()
        return cats[np.where(codes < 0, len(cats) - 1, codes)]
    return np.asarray([fn(str(v)) for v in series.fillna("")], dtype=object)


def in_plants(series: pd.Series, plants: list[str]) -> np.ndarray:
    """Boolean mask of rows whose plant is in ``plants`` (integer codes for categoricals)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        wanted = set(plants)
        codes = [i for i, c in enumerate(series.cat.categories) if str(c) in wanted]
        return np.isin(series.cat.codes.to_numpy(), codes)
    return series.isin(plants).to_numpy()


def member(sorted_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """For each of the sorted unique ``sorted_keys``: does it occur in ``values``? (binary search; numpy's
    hash-based ``isin`` was seconds slower on millions of int64 keys)."""
    out = np.zeros(sorted_keys.size, dtype=bool)
    if not sorted_keys.size or not values.size:
        return out
    space = _dense_space(sorted_keys, values)
    if space:
        # Keys are factorized codes (dense): a flag table is linear, the binary search n log n.
        seen = np.zeros(space, dtype=bool)
        seen[values] = True
        return seen[sorted_keys]
    pos = np.searchsorted(sorted_keys, values)
    ok = pos < sorted_keys.size
    pos = pos[ok]
    pos = pos[sorted_keys[pos] == values[ok]]
    out[pos] = True
    return out


def _dense_space(*keys: np.ndarray) -> int:
    """Size of a flag/lookup table covering ``keys`` when they are dense non-negative integers (at
    most a few times as many slots as keys), else 0."""
    if not all(k.size for k in keys) or any(k.dtype.kind not in "iu" for k in keys):
        return 0
    low = min(int(k.min()) for k in keys)
    space = max(int(k.max()) for k in keys) + 1
    return space if low >= 0 and space <= 4 * sum(k.size for k in keys) + 1024 else 0


def positions(sorted_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index in the sorted unique ``sorted_keys`` of each of ``values`` (all present):
    ``np.searchsorted``, or a lookup table when the keys are dense."""
    space = _dense_space(sorted_keys, values)
    if not space:
        return np.searchsorted(sorted_keys, values)
    where = np.zeros(space, dtype=np.int64)
    where[sorted_keys] = np.arange(sorted_keys.size)
    return where[values]


def first_index(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(keys, return_index=True)`` (sorted unique keys, row of each one's first
    occurrence), by a scatter instead of a stable sort when the keys are dense."""
    space = _dense_space(keys)
    if not space:
        return np.unique(keys, return_index=True)
    first = np.full(space, -1, dtype=np.int64)
    first[keys[::-1]] = np.arange(keys.size - 1, -1, -1)  # the last write of a slot is its first row
    uniq = np.flatnonzero(first >= 0)
    return uniq.astype(keys.dtype, copy=False), first[uniq]


def _reason_present(text: np.ndarray) -> np.ndarray:
    return (text != "") & (text != "none") & (text != "nan")


def prepare(run: RunData) -> Prepared:
    """Add keys and flags to the run's tables (in place) and build the per-transaction tables."""
    trace, ledger = run.trace, run.ledger
    codes, _ = pd.factorize(pd.concat([trace["txn_id"], ledger["txn_id"]], ignore_index=True))
    n_ids = max(1, int(codes.max()) + 1) if codes.size else 1
    t_codes, l_codes = codes[: len(trace)], codes[len(trace):]
    trace["key"] = trace["replication"].to_numpy(np.int64) * n_ids + t_codes
    ledger["key"] = ledger["replication"].to_numpy(np.int64) * n_ids + l_codes

    flow = trace["flow"]
    non_erp = map_text(trace["target"], lambda v: "1" if v.lower() in _NON_ERP_TARGETS else "") == "1"
    # A shipment the plant's WMS refused (its lot on hold) was never meant for the ERP: not a posting to reconcile.
    refused = (trace["outcome"] == REJECTED).to_numpy() & (text_lower(trace["reason"]) == REASON_LOT_ON_HOLD)
    trace["posting"] = flow.isin(ERP_POSTING_FLOWS).to_numpy() & ~non_erp & ~refused
    # Flow latency: order release completes at the MES ack, everything else at delivery.
    is_order = (flow == ORDER_RELEASE).to_numpy()
    t_created = trace["t_created"].to_numpy()
    trace["latency"] = np.where(is_order, trace["t_acked"].to_numpy(), trace["t_delivered"].to_numpy()) - t_created
    # The latest hop a row reached (-inf when none): a running maximum that skips NaN, column by column
    # (a 2-D copy of the five hop columns was the report's largest temporary on fleet-size runs).
    last_hop = np.full(len(trace), -np.inf)
    for col in HOP_COLUMNS:
        np.fmax(last_hop, trace[col].to_numpy(), out=last_hop)
    trace["last_hop"] = last_hop

    n_reps = max(run.replications, int(trace["replication"].max()) + 1 if len(trace) else 1)
    # Row positions first, then one copy of the chosen rows of the chosen columns.
    delivered = np.flatnonzero((trace["outcome"] == DELIVERED).to_numpy())
    delivered = delivered[np.argsort(trace["t_delivered"].to_numpy()[delivered], kind="stable")]
    delivered = delivered[~pd.Series(trace["key"].to_numpy()[delivered]).duplicated().to_numpy()]
    first_delivered = take_rows(trace, _NARROW, delivered)
    _, first_idx = first_index(trace["key"].to_numpy())
    first_rows = take_rows(trace, [*_NARROW, "t_edge", "t_broker", "t_acked", "outcome", "last_hop"], first_idx)
    postings = _postings(trace, ledger, first_delivered)
    return Prepared(run, trace, ledger, postings, first_delivered, first_rows, n_reps)


def take_rows(frame: pd.DataFrame, columns: list[str], rows: np.ndarray) -> pd.DataFrame:
    """The ``rows`` (positions) of ``frame[columns]``, index labels kept: one copy (the column selection
    is a lazy copy under copy-on-write), where selecting, sorting and de-duplicating frames copied each time."""
    return frame[columns].iloc[rows]


def _postings(trace: pd.DataFrame, ledger: pd.DataFrame, first_delivered: pd.DataFrame) -> pd.DataFrame:
    posting = trace["posting"].to_numpy()
    posting_rows = np.flatnonzero(posting)
    row_key = trace["key"].to_numpy()[posting_rows]
    order = np.lexsort((trace["t_created"].to_numpy()[posting_rows], row_key))
    first = order[np.concatenate([[True], np.diff(row_key[order]) != 0])] if order.size else order
    txns = take_rows(trace, ["key", "replication", "txn_id", "flow", "plant", "item", "qty", "target", "t_created"],
                     posting_rows[first]).reset_index(drop=True)  # sorted by key
    keys = txns["key"].to_numpy()

    outcome = trace["outcome"][posting]
    reason = text_lower(trace["reason"][posting])
    edge_drop = reason == REASON_EDGE_OVERFLOW

    def has(mask: np.ndarray) -> np.ndarray:
        return member(keys, row_key[mask])

    txns["delivered"] = has((outcome == DELIVERED).to_numpy())
    txns["dead_lettered"] = has((outcome == DEAD_LETTERED).to_numpy() & _reason_present(reason))
    txns["in_flight"] = has((outcome == IN_FLIGHT).to_numpy())
    txns["rejected"] = has((outcome == REJECTED).to_numpy() & ~edge_drop)
    txns["edge_dropped"] = has((outcome == REJECTED).to_numpy() & edge_drop)
    txns["in_ledger"] = member(keys, ledger["key"].to_numpy())

    fd = first_delivered[first_delivered["posting"].to_numpy()]
    fd_keys = fd["key"].to_numpy()
    space = _dense_space(fd_keys, keys)
    if space:  # dense keys: a lookup table instead of a sort and a binary search
        t_del = np.full(space, np.nan)
        t_del[fd_keys] = fd["t_delivered"].to_numpy()
        t_del = t_del[keys]
    else:
        sorter = np.argsort(fd_keys)
        pos = np.clip(np.searchsorted(fd_keys, keys, sorter=sorter), 0, max(len(fd_keys) - 1, 0))
        found = fd_keys[sorter[pos]] == keys if len(fd_keys) else np.zeros(len(keys), bool)
        t_del = np.where(found, fd["t_delivered"].to_numpy()[sorter[pos]] if len(fd_keys) else np.nan, np.nan)
    txns["t_delivered"] = t_del
    txns["delay"] = t_del - txns["t_created"].to_numpy()
    # When the transaction leaves the integration backlog: first delivery; never while in flight;
    # otherwise (dead letter / rejection) at the last hop it reached.
    last_hop = np.full(len(keys), -np.inf)
    np.maximum.at(last_hop, positions(keys, row_key), trace["last_hop"].to_numpy()[posting_rows])
    t_end = np.where(np.isfinite(t_del), t_del, last_hop)
    t_end = np.where(~txns["delivered"].to_numpy() & txns["in_flight"].to_numpy(), np.inf, t_end)
    txns["t_end"] = t_end
    return txns
