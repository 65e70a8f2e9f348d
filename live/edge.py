"""A plant's edge gateway: OPC UA subscription in, business events out, store-and-forward between.

Three parts, each with one job:

- :class:`EdgeAggregator` (sans-IO): counter values and downtime notices in, business events out.
  ``operation_confirmation`` (qty = good delta) and ``scrap`` per machine per confirmation interval,
  ``goods_receipt`` per completed lot of ``lot_size`` good units per line, ``downtime`` per breakdown,
  per-line telemetry aggregates per telemetry interval (kept at the edge, never sent to ERP), and the
  scenario's load bursts for the plant (:mod:`live.edge_bursts`).
  It works on absolute counter values, so a lost or coalesced notification loses nothing; a counter
  that goes down was reset (PLC reset or restart) and counts from zero again.
- :class:`GatewayPoster`: posts pending outbox rows in batches to ``/v1/events`` or ``/v2/events``
  and marks them sent only after a 202; retries with backoff while the gateway is unreachable or
  answers 5xx/429 (honouring Retry-After).
- :class:`Edge`: the asyncio host joining an asyncua client subscription, the aggregator, the
  :class:`~live.edge_store.EdgeStore` and the poster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from kernel.clock import ScaledClock
from kernel.trace import (
    BACKFLUSH,
    DOWNTIME,
    GOODS_RECEIPT,
    INVENTORY_MOVE,
    MATERIAL_ISSUE,
    OPERATION_CONFIRMATION,
    SCRAP,
)
from live.edge_bursts import BurstArrivals, plan_bursts
from live.edge_store import EdgeStore, OutboxEvent
from live.opcua_bulk import create_bulk_subscription
from live.opcua_server import DOWNTIME_EVENT, OpcUaAccess, ensure_certificate, machine_path, namespace_uri
from scenarios.spec import Scenario

log = logging.getLogger(__name__)

FLOW_CODES = {OPERATION_CONFIRMATION: "OC", SCRAP: "SC", GOODS_RECEIPT: "GR", DOWNTIME: "DT",
              MATERIAL_ISSUE: "MI", BACKFLUSH: "BF", INVENTORY_MOVE: "IM"}
SIGNALS = {
    "GoodCount": "good",
    "ScrapCount": "scrap",
    "State": "state",
    "Temperature": "temperature",
    "Speed": "speed",
}


@dataclass(frozen=True)
class EdgeConfig:
    """What the edge of one plant needs from the scenario."""

    plant: str
    lines: int
    machines_per_line: int
    products: tuple[str, ...]
    unit: str
    schema_version: str
    confirmation_interval: float
    telemetry_interval: float
    lot_size: int
    buffer: int = 1_000_000
    overflow: str = "block"
    drain_rate: float = 500.0
    post_downtime: bool = True
    bursts: tuple[BurstArrivals, ...] = ()

    @classmethod
    def from_scenario(cls, scenario: Scenario, plant_id: str) -> EdgeConfig:
        """The edge settings of ``plant_id`` (error names the known plants)."""
        from live.plant_host import find_plant

        _, plant = find_plant(scenario, plant_id)
        load = scenario.load
        return cls(
            plant=plant.id,
            lines=plant.lines,
            machines_per_line=plant.machines_per_line,
            products=tuple(plant.products),
            unit=plant.unit,
            schema_version=plant.schema_version,
            confirmation_interval=load.confirmation_interval,
            telemetry_interval=load.telemetry_interval,
            lot_size=load.lot_size,
            buffer=plant.edge.buffer,
            overflow=plant.edge.overflow,
            drain_rate=plant.edge.drain_rate,
            bursts=plan_bursts(scenario, plant.id),
        )

    @property
    def machines(self) -> int:
        return self.lines * self.machines_per_line

    def item_of_line(self, line: int) -> str:
        """The plant's local item code made on ``line`` (round robin over its products)."""
        return self.products[line % len(self.products)]


# ------------------------------------------------------------------------------------ aggregation
@dataclass
class _Telemetry:
    """Running sums of one line's machine samples over one telemetry interval."""

    samples: int = 0
    temperature_sum: float = 0.0
    temperature_max: float = -math.inf
    speed_sum: float = 0.0
    running: int = 0
    alarms: int = 0


@dataclass
class AggregatorState:
    """Everything the aggregator must remember across restarts (JSON-able)."""

    last_good: list[int]
    last_scrap: list[int]
    pend_good: list[int]
    pend_scrap: list[int]
    lot_acc: list[int]  # good units toward the next lot, per line
    lots_ready: list[list[float]]  # completion times of lots not yet emitted, per line
    lot_seq: list[int]
    seq: dict[str, int]
    next_confirm: float | None = None
    confirm_due: dict[str, float] = field(default_factory=dict)  # machine -> boundary time
    downtime: list[list] = field(default_factory=list)  # [machine, start, end] not yet emitted
    burst_sent: list[int] = field(default_factory=list)  # arrivals stored so far, per planned burst

    @classmethod
    def fresh(cls, config: EdgeConfig) -> AggregatorState:
        n, lines = config.machines, config.lines
        return cls(
            [0] * n,
            [0] * n,
            [0] * n,
            [0] * n,
            [0] * lines,
            [[] for _ in range(lines)],
            [0] * lines,
            dict.fromkeys(FLOW_CODES.values(), 0),
        )


class EdgeAggregator:
    """Sans-IO: feed it observations with their scenario time, ask it for due events."""

    def __init__(self, config: EdgeConfig, state: dict | None = None):
        self.config = config
        self.s = AggregatorState(**state) if state else AggregatorState.fresh(config)
        self._tele = [_Telemetry() for _ in range(config.lines)]
        self._tele_start: float | None = None
        self._latest: dict[str, dict[int, object]] = {"state": {}, "temperature": {}, "speed": {}}

    # ---------------------------------------------------------------------------------- inputs
    def observe_counter(self, machine: int, kind: str, value: int, t: float) -> None:
        """A counter (``good`` or ``scrap``) of ``machine`` read ``value`` at scenario time ``t``."""
        last = self.s.last_good if kind == "good" else self.s.last_scrap
        pend = self.s.pend_good if kind == "good" else self.s.pend_scrap
        value = int(value)
        previous = last[machine]
        last[machine] = value
        delta = value - previous if value >= previous else value  # a drop means the counter was reset
        if delta <= 0:
            return
        pend[machine] += delta
        if kind == "good":
            line = machine // self.config.machines_per_line
            acc = self.s.lot_acc[line] + delta
            while acc >= self.config.lot_size:
                acc -= self.config.lot_size
                self.s.lots_ready[line].append(t)
            self.s.lot_acc[line] = acc
        self._schedule(t)

    def observe_signal(self, machine: int, kind: str, value) -> None:
        """The latest value of a non-counter signal (``state``, ``temperature``, ``speed``)."""
        self._latest[kind][machine] = value

    def sample(self, t: float) -> None:
        """Add the latest signal values of every machine to the current telemetry interval."""
        if self._tele_start is None:
            self._tele_start = math.floor(t / self.config.telemetry_interval) * self.config.telemetry_interval
        per_line = self.config.machines_per_line
        state, speed = self._latest["state"], self._latest["speed"]
        for m, temperature in self._latest["temperature"].items():
            agg = self._tele[m // per_line]
            agg.samples += 1
            agg.temperature_sum += float(temperature)
            agg.temperature_max = max(agg.temperature_max, float(temperature))
            agg.speed_sum += float(speed.get(m, 0.0))
            agg.running += state.get(m) == "running"
            agg.alarms += state.get(m) == "down"

    def observe_downtime(self, machine: int, start: float, end: float) -> None:
        """A breakdown of ``machine`` from ``start`` to (expected) ``end`` in scenario seconds."""
        self.s.downtime.append([machine, float(start), float(end)])

    def _schedule(self, t: float) -> None:
        if self.s.next_confirm is None:
            interval = self.config.confirmation_interval
            self.s.next_confirm = (math.floor(t / interval) + 1) * interval

    # ---------------------------------------------------------------------------------- outputs
    def collect(self, now: float, room: int | None = None) -> list[OutboxEvent]:
        """Events due at scenario time ``now``; at most ``room`` of them (None: no limit).

        What does not fit stays in the state (counter deltas, lots, downtime) and comes out later.
        """
        c, s = self.config, self.s
        if s.next_confirm is not None and now >= s.next_confirm:
            boundary = math.floor(now / c.confirmation_interval) * c.confirmation_interval
            for m in range(c.machines):
                if s.pend_good[m] or s.pend_scrap[m]:
                    s.confirm_due[str(m)] = boundary
            s.next_confirm = boundary + c.confirmation_interval
        budget = math.inf if room is None else room
        out: list[OutboxEvent] = []
        for key in sorted(s.confirm_due, key=int):
            m = int(key)
            need = (s.pend_good[m] > 0) + (s.pend_scrap[m] > 0)
            if need > budget:
                break
            t = s.confirm_due.pop(key)
            line, machine = machine_path(m, c.machines_per_line)
            item = c.item_of_line(m // c.machines_per_line)
            if s.pend_good[m] > 0:
                out.append(self._event(OPERATION_CONFIRMATION, line, item, "", s.pend_good[m], c.unit, t))
            if s.pend_scrap[m] > 0:
                out.append(self._event(SCRAP, line, item, "", s.pend_scrap[m], c.unit, t))
            s.pend_good[m] = s.pend_scrap[m] = 0
            budget -= need
        for li in range(c.lines):
            while s.lots_ready[li] and budget >= 1:
                t = s.lots_ready[li].pop(0)
                s.lot_seq[li] += 1
                lot = f"{c.plant}-L{li + 1:02d}-{s.lot_seq[li]:06d}"
                out.append(
                    self._event(GOODS_RECEIPT, f"Line{li + 1:02d}", c.item_of_line(li), lot, c.lot_size, c.unit, t)
                )
                budget -= 1
        while c.post_downtime and s.downtime and budget >= 1:
            m, start, end = s.downtime.pop(0)
            line, machine = machine_path(int(m), c.machines_per_line)
            out.append(
                self._event(
                    DOWNTIME,
                    line,
                    f"{line}-{machine}",
                    "",
                    max(0.0, end - start),
                    "s",
                    start,
                    source="PLC",
                    target="MAINTENANCE",
                )
            )
            budget -= 1
        if not c.post_downtime:
            s.downtime.clear()
        self._collect_bursts(now, budget, out)
        return out

    def _collect_bursts(self, now: float, budget: float, out: list[OutboxEvent]) -> None:
        """Burst arrivals due by ``now`` that were not stored yet, at most ``budget`` of them."""
        sent = self.s.burst_sent
        sent.extend([0] * (len(self.config.bursts) - len(sent)))
        for k, burst in enumerate(self.config.bursts):
            due = burst.due(now)
            end = due if math.isinf(budget) else min(due, sent[k] + int(budget))
            for i in range(sent[k], end):
                line = burst.lines[i]
                item = burst.item or self.config.item_of_line(line)
                out.append(self._event(burst.flow, f"Line{line + 1:02d}", item, "", burst.qty[i], burst.unit,
                                       burst.times[i]))
            budget -= end - sent[k]
            sent[k] = end

    def telemetry_due(self, now: float) -> list[dict]:
        """Per-line telemetry aggregates of every interval that ended by ``now``."""
        if self._tele_start is None or now < self._tele_start + self.config.telemetry_interval:
            return []
        t_end = math.floor(now / self.config.telemetry_interval) * self.config.telemetry_interval
        rows = []
        for li, agg in enumerate(self._tele):
            if agg.samples == 0:
                continue
            rows.append(
                {
                    "plant": self.config.plant,
                    "line": f"Line{li + 1:02d}",
                    "t_start": self._tele_start,
                    "t_end": t_end,
                    "samples": agg.samples,
                    "temperature_mean": agg.temperature_sum / agg.samples,
                    "temperature_max": agg.temperature_max,
                    "speed_mean": agg.speed_sum / agg.samples,
                    "running_share": agg.running / agg.samples,
                    "alarms": agg.alarms,
                }
            )
        self._tele = [_Telemetry() for _ in range(self.config.lines)]
        self._tele_start = t_end
        return rows

    def state(self) -> dict:
        """The JSON-able state to save with the events just collected."""
        return dict(self.s.__dict__)

    def _event(
        self,
        flow: str,
        line: str,
        item: str,
        lot: str,
        qty: float,
        unit: str,
        t: float,
        source: str = "MES",
        target: str = "ERP",
    ) -> OutboxEvent:
        code = FLOW_CODES[flow]
        self.s.seq[code] = self.s.seq.get(code, 0) + 1  # a state saved before a code existed lacks it
        txn = f"{self.config.plant}-{code}-{self.s.seq[code]:06d}"
        return OutboxEvent(
            txn_id=txn,
            correlation_id=lot or txn,
            flow=flow,
            plant=self.config.plant,
            line=line,
            item=item,
            lot=lot,
            qty=float(qty),
            unit=unit,
            schema_version=self.config.schema_version,
            t_created=float(t),
            source=source,
            target=target,
        )


# ----------------------------------------------------------------------------------------- posting
def payload(row: dict) -> dict:
    """The gateway body of one outbox row in its plant's schema version (v1 legacy or v2 canonical)."""
    if row["schema_version"] == "v1":
        return {
            "id": row["txn_id"],
            "type": row["flow"],
            "material": row["item"],
            "quantity": row["qty"],
            "uom": row["unit"],
            "line": row["line"] or "",
            "lot": row["lot"] or "",
            "timestamp": row["t_created"],
        }
    return {
        "txn_id": row["txn_id"],
        "correlation_id": row["correlation_id"] or "",
        "flow": row["flow"],
        "item": row["item"],
        "qty": row["qty"],
        "unit": row["unit"],
        "line": row["line"] or "",
        "lot": row["lot"] or "",
        "source": row["source"] or "MES",
        "target": row["target"] or "ERP",
        "t_created": row["t_created"],
    }


def retry_after(response: httpx.Response, default: float) -> float:
    """Wall seconds to wait from a Retry-After header (seconds or HTTP date), else ``default``."""
    value = response.headers.get("Retry-After")
    if not value:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime

            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return default


class GatewayPoster:
    """Drains the outbox to the gateway: batches, retries with backoff, sent only after 202."""

    def __init__(
        self,
        store: EdgeStore,
        gateway_url: str,
        api_key: str,
        schema_version: str,
        clock: ScaledClock,
        batch_size: int = 200,
        wall_rate: float = math.inf,
        backoff: tuple[float, float] = (0.2, 5.0),
    ):
        self.store, self.clock = store, clock
        self.url = f"{gateway_url.rstrip('/')}/{schema_version}/events"
        self.headers = {"X-Api-Key": api_key}
        self.batch_size, self.wall_rate = batch_size, wall_rate
        self.backoff_initial, self.backoff_max = backoff
        self.posts = self.failures = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Post until ``stop`` is set."""
        delay = self.backoff_initial
        async with httpx.AsyncClient(timeout=10.0) as http:
            while not stop.is_set():
                rows = self.store.next_batch(self.batch_size)
                if not rows:
                    await _wait(stop, 0.1)
                    continue
                began = time.monotonic()
                wait = await self._post(http, rows, delay)
                if wait is None:
                    delay = self.backoff_initial
                    if math.isfinite(self.wall_rate):  # drain rate: pace batches after an outage
                        await _wait(stop, len(rows) / self.wall_rate - (time.monotonic() - began))
                else:
                    self.failures += 1
                    await _wait(stop, wait)
                    delay = min(self.backoff_max, delay * 2)

    async def _post(self, http: httpx.AsyncClient, rows: list[dict], delay: float) -> float | None:
        """Post ``rows``; None on success, else wall seconds to wait before trying again."""
        try:
            response = await http.post(self.url, json=[payload(r) for r in rows], headers=self.headers)
        except httpx.HTTPError as exc:
            log.info("gateway unreachable (%s); retrying in %.1f s", type(exc).__name__, delay)
            return delay
        self.posts += 1
        if response.status_code == 202:
            self.store.mark_sent([r["txn_id"] for r in rows], self.clock.now())
            return None
        if response.status_code == 429 or response.status_code >= 500:
            return retry_after(response, delay)
        if len(rows) > 1:  # a permanent 4xx for the batch: find the offending events one by one
            for row in rows:
                wait = await self._post(http, [row], delay)
                if wait is not None:
                    return wait
            return None
        detail = response.text[:300].replace("\n", " ")
        self.store.mark_rejected(rows[0]["txn_id"], f"gateway_{response.status_code}: {detail}")
        return None


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    if seconds <= 0:
        await asyncio.sleep(0)
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


# ------------------------------------------------------------------------------------------ the edge
class _Handler:
    """Subscription callbacks: queue raw notifications for the processing loop.

    Data changes arrive a whole PublishResponse at a time (:class:`~live.opcua_bulk.BulkSubscription`),
    keyed ``(machine, signal kind)``; downtime events one by one.
    """

    def __init__(self, clock: ScaledClock, inbox: list):
        self.clock, self.inbox = clock, inbox

    def datachange_batch(self, items: list[tuple[tuple[int, str], ua.DataValue]]) -> None:
        to_scenario, now = self.clock.to_scenario, None
        for (machine, kind), dv in items:
            stamp = dv.SourceTimestamp
            if isinstance(stamp, datetime):
                t = max(0.0, to_scenario(stamp.timestamp()))  # values read during warm-up count from 0
            else:
                now = self.clock.now() if now is None else now
                t = now
            value = dv.Value.Value if dv.Value is not None else None
            self.inbox.append(("signal", machine, kind, value, t))

    def event_notification(self, event) -> None:
        machine, line = getattr(event, "Machine", None), getattr(event, "Line", None)
        if machine is None or line is None:
            return
        self.inbox.append(("downtime", str(line), str(machine), float(event.DownStart), float(event.DownEnd)))


class Edge:
    """One plant's edge process: subscribe, aggregate, store, forward. ``run()`` until stopped."""

    def __init__(
        self,
        config: EdgeConfig,
        run_dir: Path,
        opcua_url: str,
        gateway_url: str,
        api_key: str,
        clock: ScaledClock,
        access: OpcUaAccess,
        tick: float = 0.25,
        batch_size: int = 200,
        publishing_interval_ms: int = 250,
    ):
        self.config, self.opcua_url, self.clock, self.access = config, opcua_url, clock, access
        self.tick, self.publishing_interval_ms = tick, publishing_interval_ms
        self.store = EdgeStore(Path(run_dir) / "state" / f"edge-{config.plant}.sqlite", config.buffer, config.overflow)
        self.aggregator = EdgeAggregator(config, self.store.load_state())
        self.poster = GatewayPoster(
            self.store,
            gateway_url,
            api_key,
            config.schema_version,
            clock,
            batch_size,
            wall_rate=config.drain_rate * clock.speed,
        )
        self.connected = asyncio.Event()
        self.connects = 0
        self.dropped = 0
        self._inbox: list = []
        self._machine_of = {machine_path(i, config.machines_per_line): i for i in range(config.machines)}

    async def run(self, stop: asyncio.Event, ready: Callable[[], None] | None = None) -> None:
        """Run the subscription, processing and posting loops until ``stop`` is set, then flush."""
        tasks = [asyncio.create_task(self._opcua_loop(stop)), asyncio.create_task(self.poster.run(stop))]
        if ready is not None:
            ready()
        try:
            while not stop.is_set():
                if self.clock.now() >= 0:  # during the warm-up the readings only queue up
                    self.process()
                await _wait(stop, self.tick)
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.process()
            self.store.close()

    def process(self) -> int:
        """Feed queued notifications to the aggregator; store due events and state in one commit."""
        inbox, self._inbox[:] = list(self._inbox), []
        for item in inbox:
            if item[0] == "signal":
                _, machine, kind, value, t = item
                if kind in ("good", "scrap"):
                    self.aggregator.observe_counter(machine, kind, value, t)
                else:
                    self.aggregator.observe_signal(machine, kind, value)
            else:
                _, line, machine, start, end = item
                m = self._machine_of.get((line, machine))
                if m is not None:
                    self.aggregator.observe_downtime(m, start, end)
        now = self.clock.now()
        telemetry = self.aggregator.telemetry_due(now)  # close finished intervals before sampling
        self.aggregator.sample(now)
        events = self.aggregator.collect(now, self.store.room())
        if events or telemetry or inbox:
            self.dropped += self.store.add(events, now, self.aggregator.state(), telemetry)
        return len(events)

    async def _client(self) -> Client:
        client = Client(self.opcua_url, timeout=10, watchdog_intervall=5.0)  # probes tolerate a busy host
        if not self.access.insecure:
            client.application_uri = f"urn:synctwin:edge:{self.config.plant}"
            cert, key = await ensure_certificate(
                self.access.pki_dir, f"edge-{self.config.plant}", client.application_uri, server=False
            )
            await client.set_security(
                SecurityPolicyBasic256Sha256, str(cert), str(key), mode=ua.MessageSecurityMode.SignAndEncrypt
            )
            client.set_user(self.access.user)
            client.set_password(self.access.password)
        return client

    async def _opcua_loop(self, stop: asyncio.Event) -> None:
        """Connect, subscribe, watch the connection; reconnect with backoff when it drops."""
        delay = 0.5
        while not stop.is_set():
            client = None
            try:
                client = await self._client()
                await client.connect()
                await self._subscribe(client)
                self.connects += 1
                self.connected.set()
                delay = 0.5
                while not stop.is_set():
                    await _wait(stop, 1.0)
                    await client.check_connection()
            except Exception as exc:  # any failure: log, back off, reconnect
                if not stop.is_set():
                    log.warning(
                        "OPC UA connection to %s lost (%s); reconnecting in %.1f s",
                        self.opcua_url,
                        exc,
                        delay,
                    )
            finally:
                self.connected.clear()
                if client is not None:
                    with contextlib.suppress(Exception):  # the server may already be gone
                        await asyncio.wait_for(client.disconnect(), 5)
            await _wait(stop, delay)
            delay = min(5.0, delay * 2)

    async def _subscribe(self, client: Client) -> None:
        c = self.config
        idx = await client.get_namespace_index(namespace_uri(c.plant))
        nodes: dict[tuple[int, str], ua.NodeId] = {}
        for i in range(c.machines):
            line, machine = machine_path(i, c.machines_per_line)
            for name, kind in SIGNALS.items():
                nodes[(i, kind)] = ua.NodeId(f"{c.plant}.{line}.{machine}.{name}", idx)
        sub = await create_bulk_subscription(client, self.publishing_interval_ms, _Handler(self.clock, self._inbox))
        await sub.subscribe_keyed(nodes)
        etype = await client.nodes.base_event_type.get_child([f"{idx}:{DOWNTIME_EVENT}"])
        await sub.subscribe_events(client.get_node(ua.NodeId(c.plant, idx)), etype)
