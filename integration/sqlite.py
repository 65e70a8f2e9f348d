"""The one way the integration layer and the live hosts open their SQLite files.

Writers (:func:`connect`): WAL with ``synchronous=NORMAL`` -- a committed row survives a killed process
(the fault the live engine injects), not a power cut (which the testbed does not simulate) -- in
autocommit mode (``isolation_level=None``: callers open transactions explicitly), usable from any
thread of the process. Readers of another process's file (:func:`connect_readonly`) never create or
change it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def connect(path: str | Path) -> sqlite3.Connection:
    """A durable writer connection to ``path`` (its folder is created when missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    # Setting the mode takes a lock a busy writer in another process can refuse at once (partitioned workers
    # share their files): set it only on a file not yet in WAL, which nobody else is writing yet.
    if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def connect_readonly(path: str | Path, timeout: float = 5.0) -> sqlite3.Connection:
    """A read-only connection to an existing ``path`` (``sqlite3.OperationalError`` when it is absent)."""
    return sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True, timeout=timeout)


def read_rows(path: str | Path, sql: str, args: tuple = ()) -> list[dict]:
    """Rows of ``sql`` in another process's SQLite file as dicts; empty when the file or its table is absent
    (the service that writes it saw no traffic of that kind)."""
    path = Path(path)
    if not path.is_file():
        return []
    db = connect_readonly(path)
    try:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(sql, args)]
    except sqlite3.OperationalError:  # the table was never created
        return []
    finally:
        db.close()
