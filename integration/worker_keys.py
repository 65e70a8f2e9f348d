"""Set-at-a-time access to the durable processed-key store, for workers that handle messages in batches.

:class:`BatchProcessedKeys` adds one-query / one-transaction operations over many keys to
:class:`~integration.processed_keys.SqliteProcessedKeys` (same file, same states). :class:`KeyView` is
what a worker lane hands to the shared sans-IO :class:`~integration.delivery.Delivery` as its
``processed`` store: membership answers come from one bulk lookup per batch, and keys marked done
are written in one transaction when the lane commits the batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from integration.processed_keys import _DONE, _POSTING, SqliteProcessedKeys


class BatchProcessedKeys(SqliteProcessedKeys):
    """The processed-key store with bulk operations; every call is one statement or one transaction.

    A batch request's intent is one row of ``batch_intents`` (a per-key row would cost an index write
    per message on the hot path); only when its answer is lost do its keys get per-key posting states."""

    def __init__(self, path: str | Path):
        super().__init__(path)
        self._db.execute("CREATE TABLE IF NOT EXISTS batch_intents (id INTEGER PRIMARY KEY, keys TEXT NOT NULL, "
                         "t REAL)")
        # Intents a process left behind when it died mid-request: their keys are uncertain now.
        for (intent,) in self._db.execute("SELECT id FROM batch_intents").fetchall():
            self.unanswered(intent)

    def states(self, keys: Iterable[str]) -> dict[str, str]:
        """``{key: "done" | "posting"}`` for the keys the store knows (one indexed query). A key in a
        request intent still open -- its batch failed in this process after the request went out -- is
        *posting* too, so a redelivered copy is checked against the target before it is posted again."""
        cur = self._db.execute(
            "WITH wanted(key) AS (SELECT value FROM json_each(?)) "
            "SELECT j.value, 'posting' FROM batch_intents AS b, json_each(b.keys) AS j "
            "WHERE j.value IN (SELECT key FROM wanted) "
            "UNION ALL SELECT key, state FROM processed_keys WHERE key IN (SELECT key FROM wanted)",
            (json.dumps(list(keys)),),
        )
        return dict(cur.fetchall())  # processed_keys rows come last: "done" wins over an open intent

    def begin_batch(self, keys: list[str], t: float | None = None) -> int:
        """Record the intent to post ``keys`` in one request (one row, before the request goes out);
        returns the intent's id for :meth:`answered` / :meth:`unanswered`."""
        return int(self._db.execute("INSERT INTO batch_intents(keys, t) VALUES (?, ?)",
                                    (json.dumps(keys), t)).lastrowid)

    def answered(self, intent: int) -> None:
        """The request was answered: forget its intent. After a success call this only once the keys
        are marked done (:meth:`add_many`), so a crash in between leaves them uncertain, never unknown."""
        self._db.execute("DELETE FROM batch_intents WHERE id = ?", (intent,))

    def unanswered(self, intent: int) -> None:
        """The request's answer was lost: its keys become per-key *posting* intents (see
        :meth:`~integration.processed_keys.SqliteProcessedKeys.uncertain`), in one transaction."""
        self._db.execute("BEGIN")
        try:
            self._db.execute(
                "INSERT INTO processed_keys(key, state, t) SELECT j.value, ?, b.t FROM batch_intents AS b, "
                "json_each(b.keys) AS j WHERE b.id = ? ON CONFLICT(key) DO NOTHING", (_POSTING, intent))
            self._db.execute("DELETE FROM batch_intents WHERE id = ?", (intent,))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def add_many(self, keys: Iterable[str], t: float | None = None) -> None:
        """Mark every key as posted (the target accepted the batch)."""
        self._many("INSERT INTO processed_keys(key, state, t) VALUES (?, ?, ?) "
                   "ON CONFLICT(key) DO UPDATE SET state = excluded.state, t = excluded.t",
                   [(k, _DONE, t) for k in keys])

    def abandon_many(self, keys: Iterable[str]) -> None:
        """Forget posting intents whose batch certainly did not land."""
        self._many("DELETE FROM processed_keys WHERE key = ? AND state = ?", [(k, _POSTING) for k in keys])

    def _many(self, sql: str, rows: list[tuple]) -> None:
        if not rows:
            return
        self._db.execute("BEGIN")
        try:
            self._db.executemany(sql, rows)
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise


class KeyView:
    """A lane's window on the store, implementing ``ProcessedKeys`` for :class:`Delivery`.

    ``load`` reads the states of a batch's keys in one query; ``in`` then answers from memory;
    ``add`` (called by ``Delivery.succeeded``) is buffered until ``commit``, which writes all in one
    transaction -- before the lane acknowledges anything. A lane owns its keys (one business key, one
    lane), so no other lane changes them in between.
    """

    def __init__(self, store: BatchProcessedKeys):
        self.store = store
        self._done: set[str] = set()
        self._added: list[str] = []

    def load(self, keys: Iterable[str]) -> dict[str, str]:
        """Forget the previous batch and read the states of ``keys``."""
        states = self.store.states(keys)
        self._done = {k for k, s in states.items() if s == _DONE}
        self._added.clear()
        return states

    def __contains__(self, key: str) -> bool:
        return key in self._done

    def add(self, key: str) -> None:
        self._done.add(key)
        self._added.append(key)

    def commit(self, t: float | None = None) -> None:
        """Write the keys added since the last commit, in one transaction."""
        self.store.add_many(self._added, t)
        self._added.clear()
