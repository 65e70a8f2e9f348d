"""Files other processes read while they are written: replaced whole, never seen half written, and watched for
changes by their readers."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file renamed over it (its folder is created when
    missing): a reader sees the old content or the new, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # writers in two threads
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


class FileChange:
    """Tells whether a file another process replaces (:func:`write_text_atomic`) changed since the last look.

    A change is another inode, mtime or size, or the file appearing or vanishing. ``recheck_s`` spaces the
    looks (wall seconds) for callers on a hot path; between looks the file counts as unchanged."""

    def __init__(self, path: str | Path, recheck_s: float = 0.0):
        self.path, self.recheck_s = Path(path), recheck_s
        self._seen: tuple[int, int, int] | None = None
        self._looked = False
        self._next_look = 0.0  # monotonic time of the next look

    def changed(self) -> bool:
        """True on the first look and whenever the file changed since the previous one."""
        now = time.monotonic()
        if self._looked and now < self._next_look:
            return False
        self._next_look = now + self.recheck_s
        try:
            st = self.path.stat()
            seen: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            seen = None
        first, self._looked = not self._looked, True
        if seen == self._seen and not first:
            return False
        self._seen = seen
        return True


class WatchedNumber:
    """One number in a small JSON file another process replaces whole, re-read only when the file changed.

    ``default`` stands while the file is missing or unreadable; an unreadable file is reported on stderr once,
    naming ``reader`` (the process that ignores it)."""

    def __init__(self, path: str | Path, key: str, default: float, reader: str, recheck_s: float = 0.0):
        self.key, self.default, self.reader = key, default, reader
        self.file = FileChange(path, recheck_s)
        self.value = default

    def get(self) -> float:
        """The number as the file says now (``default`` without a readable one)."""
        if self.file.changed():
            self.value = self._read()
        return self.value

    def _read(self) -> float:
        path = self.file.path
        if not path.exists():
            return self.default
        try:
            return float(json.loads(path.read_text())[self.key])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"{self.reader}: ignoring {path} ({type(exc).__name__}: {exc})", file=sys.stderr, flush=True)
            return self.default
