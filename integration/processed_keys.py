"""Durable processed-key store for the live workers (SQLite), implementing ``ProcessedKeys``.

JetStream drops a re-published message only inside its duplicate window (2 min wall). A copy that
arrives later -- an edge retry after a long outage, a redelivery after a worker restart -- must
still not be posted twice, so the keys live on disk and survive restarts.

Each key also passes through an intent state: ``begin`` marks a key as *posting* before the HTTP
request goes out, ``add`` marks it *done* after the target answered. A key still marked posting
when a fresh worker starts means the previous worker died between the request and the answer; the
worker must then ask the target whether the posting landed (see :meth:`uncertain`).
"""

from __future__ import annotations

from pathlib import Path

from integration.sqlite import connect

_POSTING, _DONE = "posting", "done"


class SqliteProcessedKeys:
    """Processed keys in ``path``; every change is committed before the call returns.

    WAL with ``synchronous=NORMAL`` survives a killed process (the fault the live engine injects);
    it does not promise durability across a power cut, which the testbed does not simulate.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._db = connect(self.path)
        # WITHOUT ROWID: the rows live in the key's own B-tree, one tree to update per key instead of two.
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS processed_keys (key TEXT PRIMARY KEY, state TEXT NOT NULL, t REAL) "
            "WITHOUT ROWID"
        )

    def __contains__(self, key: str) -> bool:
        row = self._db.execute("SELECT state FROM processed_keys WHERE key = ?", (key,)).fetchone()
        return row is not None and row[0] == _DONE

    def __len__(self) -> int:
        return self._db.execute("SELECT count(*) FROM processed_keys WHERE state = ?", (_DONE,)).fetchone()[0]

    def add(self, key: str, t: float | None = None) -> None:
        """Mark ``key`` as posted (the target accepted it)."""
        self._db.execute(
            "INSERT INTO processed_keys(key, state, t) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET state = excluded.state, t = excluded.t",
            (key, _DONE, t),
        )

    def begin(self, key: str, t: float | None = None) -> None:
        """Record the intent to post ``key`` (before the request goes out)."""
        self._db.execute(
            "INSERT INTO processed_keys(key, state, t) VALUES (?, ?, ?) ON CONFLICT(key) DO NOTHING",
            (key, _POSTING, t),
        )

    def abandon(self, key: str) -> None:
        """Forget a posting intent whose request certainly did not land (refused, dead-lettered)."""
        self._db.execute("DELETE FROM processed_keys WHERE key = ? AND state = ?", (key, _POSTING))

    def uncertain(self, key: str) -> bool:
        """True when a request for ``key`` went out and its answer never came (the process died, or
        the connection dropped): the posting may or may not exist at the target.

        Callers handle one key at a time (the workers' lanes), so a posting state seen before a new
        attempt always belongs to an earlier, unanswered one."""
        row = self._db.execute("SELECT state FROM processed_keys WHERE key = ?", (key,)).fetchone()
        return row is not None and row[0] == _POSTING

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteProcessedKeys:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
