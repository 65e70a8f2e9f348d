"""What the ERP service tests share: a one-plant scenario file, the service as a real process, a posting.

Plain helpers (fixtures live in conftest.py)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from live.procs import Service

SCENARIO = """
name: erp-test
landscape:
  erp:
    kind: legacy
    service: {{mean: {mean}, distribution: constant}}
    network_latency: 0s
    {rate}
  plants:
    - id: P01
"""


def scenario(tmp_path: Path, mean: str = "6s", rate: str = "") -> Path:
    """A scenario file with a legacy ERP of constant service time ``mean`` (and API rate limit ``rate``)."""
    path = tmp_path / f"erp-{mean}-{len(rate)}.yaml"
    path.write_text(SCENARIO.format(mean=mean, rate=f"rate_limit: {rate}" if rate else ""))
    return path


def erp(scenario_file: Path, db: Path, speed: float = 60.0) -> Service:
    """The legacy ERP twin of ``scenario_file`` as a started process with its ledger in ``db``."""
    args = [sys.executable, "-m", "synctwin.commands.live_services", "erp", "--kind", "legacy",
            "--scenario", str(scenario_file), "--db", str(db), "--epoch", str(time.time()), "--speed", str(speed)]
    proc = Service("erp-legacy", args, db.parent / "logs")
    proc.start()
    return proc


def posting(txn: str, qty: float = 5.0) -> dict:
    """A goods receipt posting body for the ERP's ``/postings`` routes."""
    return {"txn_id": txn, "flow": "goods_receipt", "plant": "P01", "item": "FG-100", "qty": qty, "unit": "EA",
            "t_created": 30.0}
