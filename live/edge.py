"""A plant's edge gateway: OPC UA subscription in, business events out, store-and-forward between.

The host joins three parts, each with one job: an asyncua client subscription (notifications queued
by :class:`_Handler`), the sans-IO :class:`~live.edge_aggregator.EdgeAggregator` (observations in,
events out), the :class:`~live.edge_store.EdgeStore` (outbox and aggregator state, one commit per
tick) and the :class:`~live.edge_poster.GatewayPoster` (outbox to the gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from kernel.clock import ScaledClock
from live.edge_aggregator import EdgeAggregator, EdgeConfig
from live.edge_clock import EdgeClock, skew_file
from live.edge_poster import GatewayPoster, wait_or_stop
from live.edge_store import EdgeStore
from live.intervals import floor_notes
from live.opcua_bulk import create_bulk_subscription
from live.opcua_server import DOWNTIME_EVENT, OpcUaAccess, ensure_certificate, machine_path, namespace_uri
from live.plant_api import plant_app, serve_plant_api
from live.plant_wms import PlantWms, WmsConfig
from live.production_end import ProductionEnd, production_end_file

__all__ = ["SIGNALS", "Edge", "EdgeConfig"]

log = logging.getLogger(__name__)

SIGNALS = {
    "GoodCount": "good",
    "ScrapCount": "scrap",
    "State": "state",
    "Temperature": "temperature",
    "Speed": "speed",
}


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
        tick: float | None = None,
        batch_size: int = 200,
        publishing_interval_ms: float | None = None,
        wms: WmsConfig | None = None,
        api_port: int | None = None,
    ):
        """``tick`` (scan) and ``publishing_interval_ms`` default to the scenario's intervals at the clock's speed.
        With ``wms`` the edge also runs the plant's WMS (:mod:`live.plant_wms`); with ``api_port`` too, it
        serves the plant's receiving endpoint for enterprise messages there (:mod:`live.plant_api`, 0: any port)."""
        clock = EdgeClock(clock, skew_file(run_dir, config.plant))  # the edge's own clock: a fault may skew it
        self.config, self.opcua_url, self.clock, self.access = config, opcua_url, clock, access
        iv, speed = config.intervals, clock.speed
        for note in floor_notes(config.plant, iv, speed):
            log.warning(note)
        self.tick = iv.wall("scan", speed) if tick is None else tick
        if publishing_interval_ms is None:
            publishing_interval_ms = iv.wall("publishing", speed) * 1000
        self.publishing_interval_ms = publishing_interval_ms
        self.store = EdgeStore(Path(run_dir) / "state" / f"edge-{config.plant}.sqlite", config.buffer, config.overflow)
        self.production_end = ProductionEnd(production_end_file(run_dir))  # nothing is made after the run ends
        self.store.mark_drawn_through(None)  # a mark left by an earlier attempt in this folder says nothing now
        self._marked_end: float | None = None  # the production end last marked as drawn
        self.aggregator = EdgeAggregator(config, self.store.load_state())
        self.wms = PlantWms(wms, self.store) if wms is not None else None
        if self.wms is not None:
            self.wms.recover()
        self.api_port = api_port
        self.poster = GatewayPoster(
            self.store,
            gateway_url,
            api_key,
            config.schema_version,
            clock,
            batch_size,
            wall_rate=config.drain_rate * clock.speed,
            backoff=(iv.wall("retry_initial", speed), iv.wall("retry_max", speed)),
            idle_poll=iv.wall("flush", speed),
        )
        self.connected = asyncio.Event()
        self.connects = 0
        self.dropped = 0
        self._inbox: list = []
        self.server_started: object = None  # the OPC UA server's StartTime at the last connect
        self.server_restarts = 0  # reconnects that found a restarted server (its counters began at zero)
        self._machine_of = {machine_path(i, config.machines_per_line): i for i in range(config.machines)}

    async def run(self, stop: asyncio.Event, ready: Callable[[], None] | None = None) -> None:
        """Run the subscription, processing and posting loops until ``stop`` is set, then flush."""
        tasks = [asyncio.create_task(self._opcua_loop(stop)), asyncio.create_task(self.poster.run(stop))]
        if self.wms is not None and self.api_port is not None:
            app = plant_app(self.config.plant, self.wms, self.clock)
            tasks.append(asyncio.create_task(serve_plant_api(app, self.api_port, stop)))
        if ready is not None:
            ready()
        try:
            while not stop.is_set():
                if self.clock.now() >= 0:  # during the warm-up the readings only queue up
                    self.process()
                await wait_or_stop(stop, self.tick)
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
            elif item[0] == "counters_reset":
                # A restarted server counts from zero: its first values are whole deltas, even those
                # already above the last value read from the server before it.
                self.aggregator.s.last_good = [0] * len(self.aggregator.s.last_good)
                self.aggregator.s.last_scrap = [0] * len(self.aggregator.s.last_scrap)
            else:
                _, line, machine, start, end = item
                m = self._machine_of.get((line, machine))
                if m is not None:
                    self.aggregator.observe_downtime(m, start, end)
        now = self.clock.now()
        produced_until = min(now, self.production_end.refresh())  # nothing is drawn after the run's end
        telemetry = self.aggregator.telemetry_due(produced_until)  # close finished intervals before sampling
        self.aggregator.sample(produced_until)
        events = self.aggregator.collect(produced_until, self.store.room())
        if events or telemetry or inbox:
            self.dropped += self.store.add(events, now, self.aggregator.state(), telemetry)
        if self.wms is not None:
            self.wms.putaway(events)
            self.wms.ship_due(produced_until)
            self.wms.mes.ack_due(now)  # orders whose validation (load.mes_ack) ended
        self._mark_drawn_to_end(produced_until)
        return len(events)

    def _mark_drawn_to_end(self, produced_until: float) -> None:
        """Once production has ended and every event made before the end is in the outbox, say so in the store:
        the drain waits for it (the outbox alone may be empty while a full one held events back)."""
        end = self.production_end.t
        if end == self._marked_end or not math.isfinite(end) or produced_until < end:
            return
        if self.aggregator.drawn_through(end) >= end:
            self.store.mark_drawn_through(end)
            self._marked_end = end

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
                await self._note_server_start(client)
                await self._subscribe(client)
                self.connects += 1
                self.connected.set()
                delay = 0.5
                while not stop.is_set():
                    await wait_or_stop(stop, 1.0)
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
                        async with asyncio.timeout(5):
                            await client.disconnect()
            await wait_or_stop(stop, delay)
            delay = min(5.0, delay * 2)

    async def _note_server_start(self, client: Client) -> None:
        """Compare the server's StartTime with the last connect's: a new one means the server restarted and
        its counters began again at zero (queued, so notifications of the old server are counted first)."""
        started = await client.get_node(ua.NodeId(ua.ObjectIds.Server_ServerStatus_StartTime)).read_value()
        if self.server_started is not None and started != self.server_started:
            self.server_restarts += 1
            self._inbox.append(("counters_reset",))
        self.server_started = started

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
