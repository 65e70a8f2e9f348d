"""When the run stops producing: the scenario time after which the plants make nothing more.

A run ends producing at its duration, or earlier when it is interrupted (Ctrl-C). The orchestrator then
stops the OPC UA servers, but an edge also draws arrivals of its own (load bursts, the steady warehouse
flows, each line's backflush) from the seed, and its WMS ships lots when they are due: left alone, an
interrupted run of ``--duration 10h`` would go on producing while it drains and never drain, and a run
would make postings during its drain, after the drain found everything delivered (left in flight). So the
orchestrator writes the end to ``RUN_DIR/state/production_end.json`` when its drain begins, and each edge
stops its aggregation and its WMS's shipments there.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from kernel.files import WatchedNumber, write_text_atomic


def production_end_file(run_dir: Path) -> Path:
    """Where the orchestrator puts the scenario time the run stopped producing."""
    return Path(run_dir) / "state" / "production_end.json"


def write_production_end(run_dir: Path, t: float) -> None:
    """Stop the edges' production at scenario time ``t`` (atomic: a reader never sees half)."""
    write_text_atomic(production_end_file(run_dir), json.dumps({"t": float(t)}))


def clear_production_end(run_dir: Path) -> None:
    """No end yet (a file left by an earlier attempt in the same folder must not stop this one)."""
    production_end_file(run_dir).unlink(missing_ok=True)


class ProductionEnd:
    """The end as the file says (infinity without one), re-read when the file changes. Looked at on every
    call, unthrottled: an edge that saw the end late would draw arrivals after it."""

    def __init__(self, path: Path):
        self._file = WatchedNumber(path, "t", math.inf, reader="edge")

    @property
    def t(self) -> float:
        """The end as last read."""
        return self._file.value

    def refresh(self) -> float:
        """The current end; a missing or unreadable file means none."""
        return self._file.get()
