"""The Locust user of ``synctwin load``: a plant edge posting canonical (v2) batches at a set pace.

The class is built at run time from a :class:`LoadConfig` (the same one in the master and in every
worker process), so pace, batch size, keys and the scenario clock are settings, not globals.
Each event's ``t_created`` is the scenario time it was sent, so the chain's end-to-end latency is
``t_delivered - t_created`` on the run's scaled clock.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from loadtest.plan import Stage

# One event, encoded from a template: the load generator shares the cores with the chain it loads.
_EVENT = '{"txn_id":"%s-%d","flow":"%s","item":"%s","qty":1.0,"unit":"%s","line":"%s","t_created":%r}'


@dataclass
class LoadConfig:
    """Everything a Locust process of one load run needs (written as JSON for the worker processes)."""

    host: str
    keys: list[str]
    batch: int
    user_rps: float  # requests per second of one user
    epoch: float  # Unix time of scenario second 0 (t_created of the events)
    speed: float
    plan: list[Stage]
    out_dir: str
    processes: int = 1
    item: str = "FG-100"
    unit: str = "EA"
    line: str = "L01"
    flow: str = "operation_confirmation"
    stats_prefix: str = "locust"

    @property
    def per_user_rate(self) -> float:
        """Events per second one user posts."""
        return self.batch * self.user_rps

    def write(self, path: Path) -> None:
        data = asdict(self)
        path.write_text(json.dumps(data, indent=1))

    @classmethod
    def read(cls, path: Path) -> LoadConfig:
        data = json.loads(Path(path).read_text())
        data["plan"] = [Stage(**s) for s in data["plan"]]
        return cls(**data)


def batch_body(prefix: str, start: int, n: int, t_created: float, cfg: LoadConfig) -> bytes:
    """A ``/v2/events`` body of ``n`` events with txn ids ``prefix-start`` ... (a list when n > 1)."""
    parts = [_EVENT % (prefix, i, cfg.flow, cfg.item, cfg.unit, cfg.line, t_created) for i in range(start, start + n)]
    return (("[" + ",".join(parts) + "]") if n > 1 else parts[0]).encode()


def make_user_class(cfg: LoadConfig) -> type:
    """A ``FastHttpUser`` subclass posting ``cfg.batch`` events ``cfg.user_rps`` times a second."""
    from locust import FastHttpUser, constant_throughput, task

    keys = list(cfg.keys)
    headers_by_key = [{"X-Api-Key": k, "Content-Type": "application/json"} for k in keys]
    picker = itertools.count()

    class IngestBatchUser(FastHttpUser):
        host = cfg.host
        wait_time = constant_throughput(cfg.user_rps)
        network_timeout = 30.0
        connection_timeout = 10.0

        def on_start(self) -> None:
            self.headers = headers_by_key[next(picker) % len(headers_by_key)]
            self.prefix = "LD" + uuid.uuid4().hex[:12]
            self.sent = 0

        @task
        def post_batch(self) -> None:
            t_created = (time.time() - cfg.epoch) * cfg.speed
            body = batch_body(self.prefix, self.sent, cfg.batch, t_created, cfg)
            self.sent += cfg.batch
            with self.client.post("/v2/events", data=body, headers=self.headers, catch_response=True,
                                  name=f"/v2/events x{cfg.batch}") as response:
                if response.status_code != 202:
                    # 429 is the gateway protecting itself: the events were not taken, so it counts
                    # against the rate the chain sustains (the capacity search reads failures).
                    response.failure(f"HTTP {response.status_code}: {(response.text or '')[:120]}")

    return IngestBatchUser
