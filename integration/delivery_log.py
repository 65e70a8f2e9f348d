"""``deliveries.sqlite``: one row per message copy the integration workers finished with, and every
transition of their circuit breakers (``breaker``: the opening and probes a failed attempt leaves no row for)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from integration.sqlite import connect

DELIVERY_COLUMNS = (
    "txn_id", "t_broker", "t_delivered", "attempts", "outcome", "reason", "target",
    # Not in the minimal contract; they let collection build trace rows without the edge outbox.
    "correlation_id", "flow", "plant", "line", "item", "lot", "qty", "unit", "schema_version",
    "t_created", "t_acked", "detail",
)


class DeliveryLog:
    """The workers' delivery log (WAL, ``synchronous=NORMAL``: survives a killed process)."""

    def __init__(self, path: str | Path):
        self._db = connect(path)
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS deliveries (txn_id TEXT, t_broker REAL, t_delivered REAL, "
            "attempts INTEGER, outcome TEXT, reason TEXT, target TEXT, correlation_id TEXT, flow TEXT, "
            "plant TEXT, line TEXT, item TEXT, lot TEXT, qty REAL, unit TEXT, schema_version TEXT, "
            "t_created REAL, t_acked REAL, detail TEXT)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS breaker (t REAL, target TEXT, state TEXT, worker TEXT)")
        self._sql = (f"INSERT INTO deliveries ({', '.join(DELIVERY_COLUMNS)}) "
                     f"VALUES ({', '.join('?' * len(DELIVERY_COLUMNS))})")

    def record(self, **row: object) -> None:
        """Append one row; missing columns are NULL. Committed before returning."""
        unknown = set(row) - set(DELIVERY_COLUMNS)
        if unknown:
            raise ValueError(f"unknown delivery columns: {sorted(unknown)}")
        self._db.execute(self._sql, tuple(row.get(c) for c in DELIVERY_COLUMNS))

    def record_many(self, rows: Iterable[Sequence[object]]) -> None:
        """Append rows given as tuples in ``DELIVERY_COLUMNS`` order, in one transaction."""
        self._db.execute("BEGIN")
        try:
            self._db.executemany(self._sql, rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def record_breaker(self, target: str, worker: str, transitions: Iterable[tuple[float, str]]) -> None:
        """Append breaker transitions ``(scenario time, state)`` of ``target`` in ``worker``; committed at once."""
        self._db.executemany("INSERT INTO breaker (t, target, state, worker) VALUES (?, ?, ?, ?)",
                             [(t, target, state, worker) for t, state in transitions])

    def count(self) -> int:
        return self._db.execute("SELECT count(*) FROM deliveries").fetchone()[0]

    def close(self) -> None:
        self._db.close()
