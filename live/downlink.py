"""The enterprise-to-plant downlink: durable messages in JetStream, delivered to each plant over its WAN link.

Subjects ``downlink.<plant>.<flow>`` in stream ``DOWNLINK`` (file storage, the ``Nats-Msg-Id`` header is the
``txn_id`` so a re-published copy is dropped). One durable pull consumer per plant, ``plant-<plant>``, is
read by one :class:`PlantDeliverer`: it posts what it fetched, in stream order, as one batch to the plant's
endpoint (:mod:`live.plant_api`) through the plant's WAN link (the fault proxy ``wan-down-<plant>``, cut and
healed with the uplink), and retries the same batch with the scenario's retry backoff (scaled by
``1/speed``) until the plant answers -- keeping the messages alive with in-progress acks meanwhile, so
JetStream neither redelivers them nor lets a later message overtake. So delivery is durable (a message
is acknowledged only after the plant applied it and its delivery row is written), ordered per plant and
hence per lot, and idempotent (the plant applies each ``txn_id`` once and answers copies as duplicates).
:class:`ErpQualityDeliverer` delivers the quality holds and releases the same way, from consumer
``erp-quality-<plant>``, to the ERP twin serving the plant (:mod:`live.erp_quality`).

Each delivered copy is one row in ``state/downlink.sqlite`` (the live trace's quality-message rows,
:mod:`live.collect_downlink`): ``t_broker`` the stored time of the message, ``t_delivered`` when the plant's
WMS applied it (its answer), ``t_acked`` = ``t_delivered`` (a consumer without an ack of its own,
``kernel/trace.py``), for an order the MES's ack back at the ERP (joined by :mod:`live.collect_downlink`);
a duplicate has ``t_delivered`` NaN and ``t_acked`` when the deliverer finished it; an order the MES
rejected has ``t_delivered`` and no ``t_acked``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import httpx

from integration.broker import HEADER_MSG_ID, broker_time
from integration.sqlite import connect
from kernel.clock import ScaledClock
from kernel.trace import (
    DEAD_LETTERED,
    DELIVERED,
    DUPLICATE_SUPPRESSED,
    MASTER_DATA,
    ORDER_RELEASE,
    QUALITY_HOLD,
    QUALITY_RELEASE,
    REASON_REDELIVERY,
    REJECTED,
)
from live.intervals import wall_interval

DOWNLINK_STREAM = "DOWNLINK"
DOWNLINK_SUBJECTS = "downlink.>"
_FIELDS = ("txn_id", "flow", "lot", "item", "line", "qty", "unit", "t_created")  # what the plant's endpoint takes

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    txn_id TEXT, flow TEXT, plant TEXT, line TEXT, lot TEXT, item TEXT, source TEXT, target TEXT,
    t_created REAL, t_broker REAL, t_delivered REAL, t_acked REAL, attempts INTEGER, outcome TEXT, reason TEXT
);
"""


def downlink_subject(plant: str, flow: str) -> str:
    """Subject of an enterprise message to ``plant``."""
    return f"downlink.{plant}.{flow}"


async def publish_downlink(js: Any, message: dict[str, Any]) -> None:
    """Store one enterprise-to-plant message in the DOWNLINK stream, de-duplicated by its ``txn_id``."""
    await js.publish(downlink_subject(message["plant"], message["flow"]), json.dumps(message).encode(),
                     stream=DOWNLINK_STREAM, headers={HEADER_MSG_ID: message["txn_id"]})


async def ensure_downlink_stream(js: Any) -> None:
    """Create the ``DOWNLINK`` stream unless it exists (file storage, 2-minute duplicate window)."""
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    try:
        await js.stream_info(DOWNLINK_STREAM)
    except NotFoundError:
        await js.add_stream(StreamConfig(name=DOWNLINK_STREAM, subjects=[DOWNLINK_SUBJECTS],
                                         storage=StorageType.FILE, duplicate_window=120.0))


class DownlinkLog:
    """Delivery rows of downlink messages (``state/downlink.sqlite``)."""

    def __init__(self, path: Path):
        self.db = connect(path)
        self.db.executescript(_SCHEMA)

    def delivered(self, txn_ids: list[str], to_erp: bool = False) -> set[str]:
        """Which of ``txn_ids`` already have a delivered (or rejected) row: of the copies to the plant, or with
        ``to_erp`` of those to the ERP (a quality message's two copies share its ``txn_id``)."""
        marks = ",".join("?" * len(txn_ids))
        where = "target LIKE 'ERP-%'" if to_erp else "target NOT LIKE 'ERP-%'"
        return {r[0] for r in self.db.execute(f"SELECT txn_id FROM deliveries WHERE txn_id IN ({marks}) AND "
                                              f"outcome IN (?, ?) AND {where}", (*txn_ids, DELIVERED, REJECTED))}

    def record(self, rows: list[tuple]) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT INTO deliveries VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)

    def close(self) -> None:
        self.db.close()


class PlantDeliverer:
    """Delivers ``plant``'s downlink messages to its endpoint ``url`` (through its WAN link)."""

    consumer_prefix = "plant"
    flows: tuple[str, ...] = ()  # the flows it reads; empty: every flow to the plant
    to_erp = False  # its copies go to an ERP (told apart from the plant's copies of the same txn_id)

    def __init__(self, plant: str, url: str, clock: ScaledClock, log: DownlinkLog, retry: tuple[float, float, float],
                 batch: int = 200):
        self.plant, self.url, self.clock, self.log = plant, url.rstrip("/"), clock, log
        self.initial, self.multiplier, self.max_delay = retry  # scenario seconds
        self.batch = batch
        self.delivered = 0
        self.failed_attempts = 0

    async def subscribe(self, js: Any, ack_wait: float) -> Any:
        """The plant's durable pull consumer (created once; a restarted deliverer resumes it)."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        name = f"{self.consumer_prefix}-{self.plant}"
        subjects = [downlink_subject(self.plant, f) for f in self.flows] or [downlink_subject(self.plant, "*")]
        config = ConsumerConfig(durable_name=name, ack_policy=AckPolicy.EXPLICIT,
                                deliver_policy=DeliverPolicy.ALL, ack_wait=ack_wait, max_deliver=-1,
                                max_ack_pending=self.batch, filter_subjects=subjects if len(subjects) > 1 else None)
        return await js.pull_subscribe(subjects[0], durable=name, stream=DOWNLINK_STREAM, config=config)

    async def run(self, sub: Any, stop: asyncio.Event, fetch_wait: float = 0.5) -> None:
        """Fetch, deliver, acknowledge -- one batch at a time, in order -- until ``stop`` is set."""
        from nats.errors import Error as NatsError
        from nats.errors import TimeoutError as NatsTimeout

        async with httpx.AsyncClient(timeout=10.0) as http:
            while not stop.is_set():
                try:
                    msgs = await sub.fetch(batch=self.batch, timeout=fetch_wait)
                except (TimeoutError, NatsTimeout):
                    continue
                except NatsError:  # the broker is restarting: its durable consumer is still there after
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(fetch_wait):
                            await stop.wait()
                    continue
                await self._deliver(http, msgs, stop)

    async def _deliver(self, http: httpx.AsyncClient, msgs: list[Any], stop: asyncio.Event) -> None:
        bodies = [json.loads(m.data) for m in msgs]
        attempts, delay = 0, self.initial
        while True:
            attempts += 1
            status, answers = await self._send(http, bodies)
            if status == 200:
                self._record(msgs, bodies, attempts, answers)
                break
            if status is not None and 400 <= status < 500 and status != 429:
                self._record(msgs, bodies, attempts, {}, f"http_{status}")
                break
            self.failed_attempts += 1
            if stop.is_set():
                return  # unacknowledged: JetStream hands them out again to the next run of the deliverer
            for m in msgs:  # still working on them: no redelivery, no overtaking
                with contextlib.suppress(Exception):
                    await m.in_progress()
            await asyncio.sleep(wall_interval(delay, self.clock.speed))
            delay = min(self.max_delay, delay * self.multiplier)
        for m in msgs:
            with contextlib.suppress(Exception):
                await m.ack()
        self.delivered += len(msgs)

    async def _send(self, http: httpx.AsyncClient, bodies: list[dict]) -> tuple[int | None, dict[str, dict]]:
        """Post ``bodies`` to the plant's endpoint: (HTTP status or None when unanswered, answers by txn_id)."""
        return await _post_batch(http, f"{self.url}/downlink", self.plant, bodies)

    def _ends(self, flow: str, body: dict) -> tuple[str, str]:
        """(source, target) of a message's trace row."""
        return ("ERP", "MES") if flow in (ORDER_RELEASE, MASTER_DATA) else ("QMS", "WMS")

    def _record(self, msgs: list[Any], bodies: list[dict], attempts: int, answers: dict[str, dict],
                dead_reason: str = "") -> None:
        now, nan, rows = self.clock.now(), float("nan"), []
        # A "duplicate" of a message never recorded here: the plant applied an earlier attempt whose answer
        # was lost (a link cut mid-request); that first application is this message's delivery.
        recorded = self.log.delivered([b["txn_id"] for b in bodies], self.to_erp)
        for m, b in zip(msgs, bodies, strict=True):
            a = answers.get(b["txn_id"])
            if a is not None and a["status"] == "duplicate" and b["txn_id"] not in recorded:
                a = {**a, "status": "applied"}
            if dead_reason or a is None:
                outcome, reason, t_delivered = DEAD_LETTERED, dead_reason or "no_answer", nan
            elif a["status"] == "duplicate":
                outcome, reason, t_delivered = DUPLICATE_SUPPRESSED, REASON_REDELIVERY, nan
            elif a["status"] == "rejected":
                outcome, reason, t_delivered = REJECTED, a.get("reason") or "rejected_at_plant", float(a["t_received"])
            else:
                outcome, reason, t_delivered = DELIVERED, "", float(a["t_received"])
            order = b["flow"] == ORDER_RELEASE
            # t_acked: a quality message is complete once applied; an order at the MES's ack back at the ERP
            # (joined at collection), a rejected one never; any other copy when the deliverer finished it.
            t_acked = (nan if order else t_delivered) if outcome in (DELIVERED, REJECTED) else now
            source, target = self._ends(b["flow"], b)
            rows.append((b["txn_id"], b["flow"], self.plant, b.get("line", ""), b["lot"], b.get("item", ""), source,
                         target, b["t_created"], broker_time(m, self.clock), t_delivered, t_acked, attempts, outcome,
                         reason))
        self.log.record(rows)


async def _post_batch(http: httpx.AsyncClient, url: str, plant: str, bodies: list[dict]) -> tuple[int | None, dict]:
    payload = {"plant": plant, "messages": [{k: b[k] for k in _FIELDS if k in b} for b in bodies]}
    try:
        resp = await http.post(url, json=payload)
    except httpx.HTTPError:
        return None, {}
    if resp.status_code != 200:
        return resp.status_code, {}
    return 200, {a["txn_id"]: a for a in resp.json()["results"]}


class ErpQualityDeliverer(PlantDeliverer):
    """Delivers ``plant``'s quality holds and releases to the ERP serving it (``urls``: ERP kind -> its
    twin's URL; ``route(plant, t_created)`` -> kind, :class:`kernel.routing.Routing`), from its own durable
    consumer ``erp-quality-<plant>`` on the same ``DOWNLINK`` messages the plant's WMS gets. Enterprise to
    enterprise, so no WAN link; the same retries, ordering and acknowledgement as a plant's deliverer, and
    its rows (target ``ERP-<kind>``) in the same delivery log."""

    consumer_prefix = "erp-quality"
    flows = (QUALITY_HOLD, QUALITY_RELEASE)
    to_erp = True

    def __init__(self, plant: str, urls: dict[str, str], route: Any, clock: ScaledClock, log: DownlinkLog,
                 retry: tuple[float, float, float], batch: int = 200):
        super().__init__(plant, "", clock, log, retry, batch)
        self.urls, self.route = {k: u.rstrip("/") for k, u in urls.items()}, route

    def _kind(self, body: dict) -> str:
        return self.route(self.plant, float(body["t_created"])) or ""

    async def _send(self, http: httpx.AsyncClient, bodies: list[dict]) -> tuple[int | None, dict[str, dict]]:
        groups: dict[str, list[dict]] = {}
        for b in bodies:  # a lot's hold and release in one batch stay in order inside their ERP's group
            groups.setdefault(self._kind(b), []).append(b)
        answers: dict[str, dict] = {}
        for kind, group in groups.items():
            if kind not in self.urls:
                return 404, {}  # no such ERP in this run: recorded as dead-lettered, with the reason
            status, got = await _post_batch(http, f"{self.urls[kind]}/quality", self.plant, group)
            if status != 200:
                return status, {}  # the whole batch again: what one ERP applied it answers as duplicates
            answers.update(got)
        return 200, answers

    def _ends(self, flow: str, body: dict) -> tuple[str, str]:
        return "QMS", f"ERP-{self._kind(body)}"
