"""What the chain does under load, sampled once a second: backlog, end-to-end latency, CPU per process.

* backlog: the workers' JetStream consumer (pending plus delivered-but-unacked), via the broker;
* end-to-end latency: every delivery the workers log (``state/deliveries.sqlite``) since the last
  sample, ``t_delivered - t_created`` on the run's scaled clock, in wall seconds;
* CPU: user + system seconds of each service's process tree (psutil), as cores used since the last sample.

Each source is optional (a team's own gateway may give none of them); what is missing stays NaN.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

from integration.sqlite import connect_readonly

NAN = float("nan")


class DeliveryTail:
    """Reads the deliveries the workers logged since the last call (by rowid; the log is append-only)."""

    def __init__(self, path: Path, speed: float, epoch: float):
        self.path, self.speed, self.epoch = Path(path), speed, epoch
        self.last_rowid = 0
        self._db: sqlite3.Connection | None = None

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """(wall time delivered, wall latency) of the new ``delivered`` rows."""
        if self._db is None:
            if not self.path.is_file():
                return np.empty(0), np.empty(0)
            self._db = connect_readonly(self.path)
        try:
            rows = self._db.execute(
                "SELECT rowid, t_created, t_delivered, outcome FROM deliveries WHERE rowid > ?",
                (self.last_rowid,)).fetchall()
        except sqlite3.OperationalError:  # the table does not exist yet
            return np.empty(0), np.empty(0)
        if not rows:
            return np.empty(0), np.empty(0)
        self.last_rowid = rows[-1][0]
        kept = [(c, d) for _, c, d, o in rows if o == "delivered" and c is not None and d is not None]
        if not kept:
            return np.empty(0), np.empty(0)
        arr = np.asarray(kept, dtype=float)
        delivered_wall = self.epoch + arr[:, 1] / self.speed
        return delivered_wall, (arr[:, 1] - arr[:, 0]) / self.speed

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


class CpuMeter:
    """Cores each named process tree used between two samples."""

    def __init__(self, pids: dict[str, int]):
        self.pids = dict(pids)
        self.last: dict[str, float] = {}
        self.last_t = time.monotonic()
        self.totals: dict[str, float] = {}
        self.sample()
        self.first = dict(self.last)

    def used(self) -> dict[str, float]:
        """CPU seconds each process tree used since this meter started."""
        return {name: total - self.first.get(name, 0.0) for name, total in self.totals.items()}

    @staticmethod
    def cpu_seconds(pid: int) -> float:
        """User + system seconds of ``pid`` and its children (NaN once it is gone)."""
        try:
            proc = psutil.Process(pid)
            return sum(sum(p.cpu_times()[:2]) for p in [proc, *proc.children(recursive=True)])
        except psutil.Error:
            return NAN

    def sample(self) -> dict[str, float]:
        now = time.monotonic()
        dt = max(now - self.last_t, 1e-6)
        out = {}
        for name, pid in self.pids.items():
            used = self.cpu_seconds(pid)
            if name in self.last and not math.isnan(used):
                out[name] = (used - self.last[name]) / dt
            if not math.isnan(used):
                self.totals[name] = used
                self.last[name] = used
        self.last_t = now
        return out


def read_backlog(nats_url: str) -> int:
    """The workers' consumer backlog, or -1 when the broker does not answer."""
    from live.backlog import consumer_backlog

    try:
        return asyncio.run(consumer_backlog(nats_url))
    except Exception:  # noqa: BLE001 - a busy or gone broker is an unknown backlog, not an error
        return -1


@dataclass
class ChainSampler:
    """One row a second of the chain's state; keeps every latency for per-stage percentiles."""

    t0: float  # unix time the load started
    nats_url: str | None = None
    deliveries: DeliveryTail | None = None
    cpu: CpuMeter | None = None
    rows: list[dict[str, float]] = field(default_factory=list)
    _delivered_at: list[np.ndarray] = field(default_factory=list)
    _latency: list[np.ndarray] = field(default_factory=list)

    def sample(self) -> dict[str, float]:
        """Take one sample now and keep it."""
        now = time.time()
        row: dict[str, float] = {"t": now - self.t0, "backlog": NAN, "delivered": NAN, "e2e_p50_s": NAN,
                                 "e2e_p99_s": NAN, "e2e_max_s": NAN}
        if self.nats_url:
            backlog = read_backlog(self.nats_url)
            row["backlog"] = float(backlog) if backlog >= 0 else NAN
        if self.deliveries is not None:
            at, lat = self.deliveries.read()
            row["delivered"] = float(lat.size)
            if lat.size:
                self._delivered_at.append(at - self.t0)
                self._latency.append(lat)
                row["e2e_p50_s"], row["e2e_p99_s"] = (float(v) for v in np.percentile(lat, [50, 99]))
                row["e2e_max_s"] = float(lat.max())
        if self.cpu is not None:
            row.update({f"cpu_{name}": cores for name, cores in self.cpu.sample().items()})
        self.rows.append(row)
        return row

    @property
    def delivered_total(self) -> int:
        """Events delivered end to end since the sampler started."""
        return int(sum(lat.size for lat in self._latency))

    def latencies_between(self, a: float, b: float) -> np.ndarray:
        """Wall latencies of the events delivered between ``a`` and ``b`` seconds after the start."""
        if not self._latency:
            return np.empty(0)
        at, lat = np.concatenate(self._delivered_at), np.concatenate(self._latency)
        return lat[(at >= a) & (at < b)]

    def rows_between(self, a: float, b: float) -> list[dict[str, float]]:
        return [r for r in self.rows if a <= r["t"] < b]
