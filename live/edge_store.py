"""The edge's durable store-and-forward buffer: an SQLite outbox in WAL mode.

Table ``outbox`` (the live-stack contract) holds one row per business event with status ``pending``
(waiting for the gateway), ``sent`` (the gateway answered 202) or ``rejected`` (dropped by the overflow
policy with reason ``edge_overflow_dropped``, or refused by the gateway with its reason). The
aggregator's state (counter positions, sequences, lots in progress) is saved in the same transaction
as the events it produced, so a killed edge restarts exactly where its last commit left it: nothing
produced twice, nothing lost. ``telemetry`` and ``downtime_log`` keep the edge-local aggregates.
``production`` says how far the outbox holds what the plant made: once the run's production has ended, the
drain waits for it to reach the end, since a full outbox (``block``) holds events back in the state.

Bound and overflow (``plant.edge`` of the scenario) count *pending* rows:

- ``block``: :meth:`EdgeStore.room` tells the producer how many events fit; it keeps the rest in its
  counter state (deltas keep accumulating), so nothing is lost, it is only late.
- ``drop_oldest``: new events go in; the oldest pending rows beyond the bound become ``rejected``.
- ``drop_newest``: events beyond the bound are stored directly as ``rejected``.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from pathlib import Path

from integration.sqlite import connect
from kernel.trace import REASON_EDGE_OVERFLOW

OVERFLOW_POLICIES = ("block", "drop_oldest", "drop_newest")
PENDING, SENT, REJECTED = "pending", "sent", "rejected"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    txn_id TEXT PRIMARY KEY, correlation_id TEXT, flow TEXT, plant TEXT, line TEXT, item TEXT, lot TEXT,
    qty REAL, unit TEXT, schema_version TEXT, t_created REAL, t_edge REAL, t_sent REAL,
    status TEXT NOT NULL, reason TEXT, source TEXT DEFAULT 'MES', target TEXT DEFAULT 'ERP'
);
CREATE INDEX IF NOT EXISTS outbox_status ON outbox(status);
CREATE TABLE IF NOT EXISTS edge_state (id INTEGER PRIMARY KEY CHECK (id = 1), state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS production (id INTEGER PRIMARY KEY CHECK (id = 1), drawn_through REAL);
CREATE TABLE IF NOT EXISTS telemetry (
    plant TEXT, line TEXT, t_start REAL, t_end REAL, samples INTEGER, temperature_mean REAL,
    temperature_max REAL, speed_mean REAL, running_share REAL, alarms INTEGER
);
"""


@dataclass(frozen=True)
class OutboxEvent:
    """One business event produced at the edge (before it is stored)."""

    txn_id: str
    correlation_id: str
    flow: str
    plant: str
    line: str
    item: str
    lot: str
    qty: float
    unit: str
    schema_version: str
    t_created: float
    source: str = "MES"
    target: str = "ERP"


class EdgeStore:
    """SQLite outbox at ``path`` bounded to ``capacity`` pending events under ``overflow``."""

    def __init__(self, path: Path, capacity: int, overflow: str = "block"):
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"edge overflow {overflow!r} is unknown; use one of {', '.join(OVERFLOW_POLICIES)}")
        if capacity < 1:
            raise ValueError("edge buffer must hold at least 1 event; set plant.edge.buffer >= 1")
        self.path, self.capacity, self.overflow = Path(path), capacity, overflow
        self.db = connect(self.path)  # WAL + NORMAL survives a killed process
        self.db.executescript(_SCHEMA)

    # --------------------------------------------------------------------------------------- writes
    def room(self) -> int | None:
        """Events that may still be added under ``block`` (None: unbounded for the drop policies)."""
        if self.overflow != "block":
            return None
        return max(0, self.capacity - self.pending_count())

    def add(
        self,
        events: list[OutboxEvent],
        t_edge: float,
        state: dict | None = None,
        telemetry: list[dict] | None = None,
    ) -> int:
        """Store ``events`` (and the producer's ``state``) in one transaction; return how many were dropped.

        A ``txn_id`` already present is ignored, so a producer replaying its last step adds nothing twice.
        """
        dropped = 0
        with self._transaction():
            pending = self.pending_count()
            for ev in events:
                status, reason = PENDING, None
                if self.overflow == "drop_newest" and pending >= self.capacity:
                    status, reason = REJECTED, REASON_EDGE_OVERFLOW
                inserted = self.insert(ev, t_edge, status, reason)
                if inserted:
                    pending += status == PENDING
                    dropped += status == REJECTED
            if self.overflow == "drop_oldest" and pending > self.capacity:
                excess = pending - self.capacity
                self.db.execute(
                    "UPDATE outbox SET status=?, reason=? WHERE rowid IN (SELECT rowid FROM outbox "
                    "WHERE status=? ORDER BY rowid LIMIT ?)",
                    (REJECTED, REASON_EDGE_OVERFLOW, PENDING, excess),
                )
                dropped += excess
            if state is not None:
                self.db.execute("INSERT OR REPLACE INTO edge_state (id, state) VALUES (1, ?)", (json.dumps(state),))
            for row in telemetry or ():
                self.db.execute(
                    "INSERT INTO telemetry VALUES (:plant, :line, :t_start, :t_end, :samples, "
                    ":temperature_mean, :temperature_max, :speed_mean, :running_share, :alarms)",
                    row,
                )
        return dropped

    def insert(self, ev: OutboxEvent, t_edge: float, status: str = PENDING, reason: str | None = None) -> bool:
        """Insert ``ev`` inside an open :meth:`transaction`; False when its ``txn_id`` is already there."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO outbox (txn_id, correlation_id, flow, plant, line, item, lot, "
            "qty, unit, schema_version, t_created, t_edge, t_sent, status, reason, source, target) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,NULL,?,?,?,?)",
            (ev.txn_id, ev.correlation_id, ev.flow, ev.plant, ev.line, ev.item, ev.lot, ev.qty, ev.unit,
             ev.schema_version, ev.t_created, t_edge, status, reason, ev.source, ev.target),
        )
        return bool(cur.rowcount)

    def transaction(self) -> _Transaction:
        """BEGIN IMMEDIATE ... COMMIT on the store's connection: edge-local tables (the plant's WMS) commit
        together with the outbox rows they cause."""
        return _Transaction(self.db)

    def mark_sent(self, txn_ids: list[str], t_sent: float) -> None:
        """The gateway accepted these (202): they leave the buffer."""
        with self._transaction():
            self.db.executemany(
                "UPDATE outbox SET status=?, t_sent=? WHERE txn_id=? AND status=?",
                [(SENT, t_sent, txn, PENDING) for txn in txn_ids],
            )

    def mark_rejected(self, txn_id: str, reason: str) -> None:
        """The gateway refused this event for good (4xx other than 429): keep it, with the reason."""
        with self._transaction():
            self.db.execute(
                "UPDATE outbox SET status=?, reason=? WHERE txn_id=? AND status=?",
                (REJECTED, reason, txn_id, PENDING),
            )

    def mark_drawn_through(self, t: float | None) -> None:
        """Every event the plant made before scenario time ``t`` is in the outbox (None: not known yet)."""
        self.db.execute("INSERT OR REPLACE INTO production (id, drawn_through) VALUES (1, ?)", (t,))

    # ---------------------------------------------------------------------------------------- reads
    def pending_count(self) -> int:
        """Events waiting for the gateway."""
        return self.db.execute("SELECT COUNT(*) FROM outbox WHERE status=?", (PENDING,)).fetchone()[0]

    def next_batch(self, limit: int) -> list[dict]:
        """The oldest ``limit`` pending events, in production order."""
        cur = self.db.execute("SELECT * FROM outbox WHERE status=? ORDER BY rowid LIMIT ?", (PENDING, limit))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def counts(self) -> dict[str, int]:
        """Rows per status (every status present, zero if none)."""
        out = {PENDING: 0, SENT: 0, REJECTED: 0}
        for status, n in self.db.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status"):
            out[status] = n
        return out

    def rows(self) -> list[dict]:
        """Every outbox row (for collection and tests)."""
        cur = self.db.execute("SELECT * FROM outbox ORDER BY rowid")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def load_state(self) -> dict | None:
        """The producer state saved with the last committed events, if any."""
        row = self.db.execute("SELECT state FROM edge_state WHERE id=1").fetchone()
        return json.loads(row[0]) if row else None

    def telemetry_rows(self) -> list[dict]:
        """Every aggregated telemetry row."""
        cur = self.db.execute("SELECT * FROM telemetry ORDER BY t_end, line")
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def close(self) -> None:
        """Checkpoint and close the database."""
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.db.close()

    def _transaction(self):
        return _Transaction(self.db)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on error (the connection runs in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


def event_dict(event: OutboxEvent) -> dict:
    """A plain dict of ``event`` (for logs and tests)."""
    return asdict(event)
