"""Columnar batches of transactions exchanged between actors once per time window.

A batch is a plain ``dict`` of equal-length numpy arrays (cheap to ship through Ray's object store,
trivially turned into Arrow). Strings travel as small integer codes into the tables below or into
the scenario's :class:`~scenarios.generator.Vocabulary`; they become text only when the trace is written.
"""

from __future__ import annotations

import numpy as np

from kernel import trace

Batch = dict[str, np.ndarray]

FLOW_CODE = {name: i for i, name in enumerate(trace.FLOWS)}
TARGETS: tuple[str, ...] = ("erp-legacy", "erp-cloud", "MES", "WMS", "maintenance", "analytics")
TARGET_CODE = {name: i for i, name in enumerate(TARGETS)}
REASONS: tuple[str, ...] = (
    "",
    trace.REASON_EDGE_OVERFLOW,
    trace.REASON_UNMAPPED_ITEM,
    trace.REASON_UNKNOWN_UNIT,
    trace.REASON_RETRIES_EXHAUSTED,
    trace.REASON_REDELIVERY,
    "order_item_not_released_to_plant",
    "run_ended_before_delivery",
    trace.REASON_LOT_ON_HOLD,
)
REASON_CODE = {name: i for i, name in enumerate(REASONS)}
OUTCOME_CODE = {name: i for i, name in enumerate(trace.OUTCOMES)}
_POSTING_CODES = np.array([FLOW_CODE[f] for f in trace.ERP_POSTING_FLOWS], dtype=np.int8)

# Columns of a finished row (one trace row), with dtypes. Outbound batches (plant -> hub) carry the
# first group only; the hub fills in the rest.
SOURCE_COLUMNS: dict[str, type] = {
    "seq": np.int64,
    "flow": np.int8,
    "line": np.int16,
    "item": np.int16,
    "qty": np.float64,
    "unit": np.int16,
    "lot": np.int64,
    "t_created": np.float64,
    "t_edge": np.float64,
    "t_broker": np.float64,
    "t_gate": np.float64,  # quality disposition the flow waits for (NaN: none)
}
RESULT_COLUMNS: dict[str, type] = {
    "plant": np.int16,
    "replication": np.int32,
    "target": np.int8,
    "t_delivered": np.float64,
    "t_acked": np.float64,
    "t_erp_arrival": np.float64,  # the delivered attempt at the ERP (kernel/trace.py)
    "t_service_start": np.float64,
    "attempts": np.int32,
    "outcome": np.int8,
    "reason": np.int8,
}
ALL_COLUMNS = SOURCE_COLUMNS | RESULT_COLUMNS


def empty(columns: dict[str, type] = ALL_COLUMNS) -> Batch:
    """A batch of zero rows with the given columns."""
    return {name: np.empty(0, dtype=dtype) for name, dtype in columns.items()}


def _column(n: int, value, dtype) -> np.ndarray:
    """``value`` as an owned column of ``n`` rows (a scalar is repeated)."""
    if np.ndim(value) == 0:
        return np.full(n, value, dtype=dtype)
    column = np.array(value, dtype=dtype)  # always a copy: batches never share buffers with callers
    if column.shape != (n,):
        raise ValueError(f"column of {column.shape} rows in a batch of {n}")
    return column


def _default(n: int, name: str, dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.floating):
        return np.full(n, np.nan)
    return np.full(n, -1 if name == "lot" else 0, dtype=dtype)


def make(n: int, columns: dict[str, type] = ALL_COLUMNS, **values) -> Batch:
    """A batch of ``n`` rows; columns not given are filled with NaN (floats), -1 (lot) or 0 (codes)."""
    unknown = set(values) - set(columns)
    if unknown:
        raise KeyError(f"unknown batch columns: {sorted(unknown)}")
    return {name: _column(n, values[name], dtype) if name in values else _default(n, name, dtype)
            for name, dtype in columns.items()}


def size(batch: Batch) -> int:
    return len(next(iter(batch.values()))) if batch else 0


def concat(batches: list[Batch], columns: dict[str, type] | None = None) -> Batch:
    """Stack batches row-wise (all must carry the same columns).

    When every batch is empty the result still carries their columns (with their dtypes), or
    ``columns`` when given: a pool with extra columns stays a pool after an empty window."""
    rows = [b for b in batches if b and size(b)]
    if rows:
        return {name: np.concatenate([b[name] for b in rows]) for name in rows[0]}
    if columns is not None:
        return empty(columns)
    kept = {name: col.dtype for b in batches if b for name, col in b.items()}
    return {name: np.empty(0, dtype=dtype) for name, dtype in kept.items()} if kept else empty(ALL_COLUMNS)


def postings(rows: Batch) -> Batch:
    """The rows an ERP accepted: its ledger (the ERP does not de-duplicate, so copies stay copies)."""
    to_erp = rows["target"] <= TARGET_CODE["erp-cloud"]
    posting = np.isin(rows["flow"], _POSTING_CODES)  # not the ERP's copies of quality messages
    return take(rows, to_erp & posting & (rows["outcome"] == OUTCOME_CODE[trace.DELIVERED]))


def take(batch: Batch, index: np.ndarray) -> Batch:
    """Rows selected by a boolean mask or an index array."""
    return {name: column[index] for name, column in batch.items()}


def with_results(batch: Batch, **values) -> Batch:
    """``batch`` extended with the result columns (defaults as in :func:`make`), ``values`` set."""
    n = size(batch)
    out = dict(batch)
    for name, dtype in RESULT_COLUMNS.items():
        if name in values:
            out[name] = _column(n, values[name], dtype)
        elif name not in out:
            out[name] = _default(n, name, dtype)
    return out
