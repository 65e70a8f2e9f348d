"""A pilot edge on the plant's real OPC UA server, bound by the node ids discovery found.

It reuses the live edge's parts through their public interfaces: :class:`~live.edge_aggregator.EdgeAggregator`
(counters in, business events out), :class:`~live.edge_store.EdgeStore` (durable store-and-forward)
and :class:`~live.edge_poster.GatewayPoster` (batches to the gateway, sent only after a 202). Only the
binding differs from the live edge: machines are the plant file's, one per aggregator "line" so each
keeps its own product, and plant states are translated to the twin's by the profile.

The aggregator starts from the counters' values at subscription time, so the pilot posts what the
plant produces during the pilot, not the machines' lifetime totals. At the end the counters are read
once more and fed in, so the last notification interval is not cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from asyncua import Client, ua

from kernel.clock import ScaledClock
from live.edge_aggregator import AggregatorState, EdgeAggregator, EdgeConfig
from live.edge_poster import GatewayPoster
from live.edge_store import EdgeStore
from live.opcua_bulk import create_bulk_subscription
from onboarding.opcua_access import make_client
from onboarding.plant_file import PlantFile
from onboarding.profile import Profile

KINDS = {"good": "good", "scrap": "scrap", "state": "state", "temperature": "temperature", "speed": "speed"}


@dataclass
class PilotCounters:
    """Counter values per (machine index, kind) at the start and the end of the pilot."""

    start: dict[tuple[int, str], int] = field(default_factory=dict)
    end: dict[tuple[int, str], int] = field(default_factory=dict)
    notifications: int = 0


def edge_config(plant: PlantFile, interval: float) -> EdgeConfig:
    """One aggregator line per machine: its product, the plant's unit and schema version."""
    return EdgeConfig(plant=plant.plant.id, lines=len(plant.machines), machines_per_line=1,
                      products=tuple(m.product or "UNKNOWN" for m in plant.machines), unit=plant.unit,
                      schema_version=plant.schema_version, confirmation_interval=interval,
                      telemetry_interval=interval, lot_size=plant.lot_size)


class _Inbox:
    def __init__(self, clock: ScaledClock, counters: PilotCounters):
        self.items: list = []
        self.clock, self.counters = clock, counters

    def datachange_batch(self, items) -> None:
        now = self.clock.now()
        self.counters.notifications += len(items)
        for (machine, kind), dv in items:
            self.items.append((machine, kind, dv.Value.Value if dv.Value is not None else None, now))


class PilotEdge:
    """Subscribe, aggregate, store, forward for ``seconds`` wall seconds; then flush and drain."""

    def __init__(self, plant: PlantFile, profile: Profile, pki_dir: Path, state_dir: Path, gateway_url: str,
                 api_key: str, clock: ScaledClock, interval: float):
        self.plant, self.profile, self.pki_dir, self.clock = plant, profile, pki_dir, clock
        self.config = edge_config(plant, interval)
        self.store = EdgeStore(Path(state_dir) / f"pilot-edge-{plant.plant.id}.sqlite", 1_000_000, "block")
        self.poster = GatewayPoster(self.store, gateway_url, api_key, plant.schema_version, clock)
        self.counters = PilotCounters()
        self.aggregator: EdgeAggregator | None = None
        self._down_since: dict[int, float] = {}
        self.nodes = {(i, KINDS[s]): b.node for i, m in enumerate(plant.machines) for s, b in m.signals.items()
                      if s in KINDS}

    async def _read_counters(self, client: Client) -> dict[tuple[int, str], int]:
        keys = [k for k in self.nodes if k[1] in ("good", "scrap")]
        values = await client.read_values([client.get_node(self.nodes[k]) for k in keys])
        return {k: int(v) for k, v in zip(keys, values, strict=True)}

    def _feed(self, items: list) -> None:
        agg = self.aggregator
        assert agg is not None
        for machine, kind, value, t in items:
            if value is None:
                continue
            if kind in ("good", "scrap"):
                agg.observe_counter(machine, kind, int(value), t)
            elif kind == "state":
                state = self.profile.twin_state(value) or "idle"
                agg.observe_signal(machine, "state", state)
                if state == "down":
                    self._down_since.setdefault(machine, t)
                elif machine in self._down_since:
                    agg.observe_downtime(machine, self._down_since.pop(machine), t)
            else:
                agg.observe_signal(machine, kind, float(value))

    def _step(self, inbox: _Inbox, now: float) -> None:
        items, inbox.items = inbox.items, []
        self._feed(items)
        agg = self.aggregator
        telemetry = agg.telemetry_due(now)
        agg.sample(now)
        events = agg.collect(now, self.store.room())
        if events or telemetry or items:
            self.store.add(events, now, agg.state(), telemetry)

    async def run(self, seconds: float, drain_timeout: float = 60.0) -> PilotCounters:
        """The whole pilot; returns the counters' start and end values."""
        stop = asyncio.Event()
        poster = asyncio.create_task(self.poster.run(stop))
        try:
            client = await make_client(self.plant.endpoint, self.pki_dir)
            async with client:
                self.counters.start = await self._read_counters(client)
                state = AggregatorState.fresh(self.config)
                for (m, kind), value in self.counters.start.items():
                    (state.last_good if kind == "good" else state.last_scrap)[m] = value
                self.aggregator = EdgeAggregator(self.config, dict(state.__dict__))
                inbox = _Inbox(self.clock, self.counters)
                sub = await create_bulk_subscription(client, self.plant.endpoint.publishing_interval * 1000, inbox)
                await sub.subscribe_keyed({k: ua.NodeId.from_string(n) for k, n in self.nodes.items()})
                began = time.monotonic()
                while time.monotonic() < began + seconds:
                    await asyncio.sleep(0.25)
                    self._step(inbox, self.clock.now())
                await sub.delete()
                self.counters.end = await self._read_counters(client)
            now = self.clock.now()
            self._feed(inbox.items + [(m, k, v, now) for (m, k), v in self.counters.end.items()])
            inbox.items = []
            self._step(inbox, now + self.config.confirmation_interval)  # closes the last confirmation interval
            deadline = time.monotonic() + drain_timeout
            while self.store.pending_count() and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await poster
        return self.counters

    def outbox(self) -> list[dict]:
        """Every event the pilot stored, with its status (pending, sent, rejected)."""
        return self.store.rows()

    def close(self) -> None:
        self.store.close()
