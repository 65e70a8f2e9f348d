"""Locust load against the gateway: plants posting canonical (v2) batches and legacy (v1) events.

    locust -f loadtest/locustfile.py --headless -u 50 -r 50 -t 30s --host http://127.0.0.1:8000 \\
        --processes 2 IngestUser

Environment: ``SYNCTWIN_LOAD_API_KEY`` (a plant key from credentials.json; ``SYNCTWIN_LOAD_CREDENTIALS``
may name the file instead, then users spread over all plants), ``SYNCTWIN_LOAD_BATCH`` (events per
request, default 1). Every event gets a unique ``txn_id``, so the broker stores each one.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid

import gevent
from locust import FastHttpUser, constant, task

FLOWS = ("operation_confirmation", "backflush", "material_issue", "scrap", "inventory_move")


def _keys() -> list[str]:
    key = os.environ.get("SYNCTWIN_LOAD_API_KEY")
    if key:
        return [key]
    path = os.environ.get("SYNCTWIN_LOAD_CREDENTIALS")
    if path:
        with open(path) as f:
            return list(json.load(f)["plants"].values())
    raise RuntimeError("set SYNCTWIN_LOAD_API_KEY or SYNCTWIN_LOAD_CREDENTIALS")


def v2_batch(prefix: str, counter: itertools.count, size: int, t: float = 0.0) -> bytes:
    """A JSON list of ``size`` canonical payloads with unique txn ids."""
    events = [
        {"txn_id": f"{prefix}-{n}", "flow": FLOWS[n % len(FLOWS)], "item": "FG-100", "qty": 1.0, "unit": "EA",
         "line": "L1", "t_created": t}
        for n in itertools.islice(counter, size)
    ]
    return json.dumps(events if size > 1 else events[0]).encode()


class IngestUser(FastHttpUser):
    """A plant edge posting v2 events back to back (batch size from ``SYNCTWIN_LOAD_BATCH``)."""

    wait_time = constant(0)

    def on_start(self) -> None:
        keys = _keys()
        self.key = keys[hash(uuid.uuid4()) % len(keys)]
        self.prefix = uuid.uuid4().hex[:12]
        self.counter = itertools.count()
        self.batch = int(os.environ.get("SYNCTWIN_LOAD_BATCH", "1"))

    @task
    def post_events(self) -> None:
        body = v2_batch(self.prefix, self.counter, self.batch)
        headers = {"X-Api-Key": self.key, "Content-Type": "application/json"}
        with self.client.post("/v2/events", data=body, headers=headers, catch_response=True,
                              name=f"/v2/events x{self.batch}") as response:
            if response.status_code == 429:
                # throttling is the contract working: back off as an edge would, don't count a failure
                response.success()
                gevent.sleep(min(float(response.headers.get("Retry-After", "1")), 5.0))
            elif response.status_code != 202:
                response.failure(f"{response.status_code}: {response.text[:200]}")


class LegacyUser(FastHttpUser):
    """A legacy plant posting one v1 event per request, paced like an edge (about 5 requests/s)."""

    wait_time = constant(0.2)

    def on_start(self) -> None:
        keys = _keys()
        self.key = keys[hash(uuid.uuid4()) % len(keys)]
        self.prefix = uuid.uuid4().hex[:12]
        self.counter = itertools.count()

    @task
    def post_v1(self) -> None:
        n = next(self.counter)
        body = {"id": f"{self.prefix}-{n}", "type": "goods_receipt", "material": "FG-100", "quantity": 150,
                "uom": "EA", "lot": f"LOT-{self.prefix}-{n}", "timestamp": 0.0}
        self.client.post("/v1/events", json=body, headers={"X-Api-Key": self.key})
