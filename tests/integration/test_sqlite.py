"""The one SQLite connection of the integration layer and the live hosts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from integration.sqlite import connect, connect_readonly


def test_writer_is_wal_normal_autocommit_and_creates_its_folder(tmp_path: Path):
    db = connect(tmp_path / "new" / "x.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    db.execute("CREATE TABLE t (v INTEGER)")
    db.execute("INSERT INTO t VALUES (1)")  # autocommit: visible to another connection at once
    reader = connect_readonly(tmp_path / "new" / "x.sqlite")
    assert reader.execute("SELECT v FROM t").fetchall() == [(1,)]
    with pytest.raises(sqlite3.OperationalError):
        reader.execute("INSERT INTO t VALUES (2)")


def test_readonly_never_creates_a_file(tmp_path: Path):
    with pytest.raises(sqlite3.OperationalError):
        connect_readonly(tmp_path / "absent.sqlite").execute("SELECT 1")
    assert not (tmp_path / "absent.sqlite").exists()
