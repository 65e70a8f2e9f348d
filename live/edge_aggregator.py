"""The edge's sans-IO aggregator: counter values and downtime notices in, business events out.

``operation_confirmation`` (qty = good delta) and ``scrap`` per machine per confirmation interval,
``backflush`` of the scenario's component per line per confirmation interval (qty = the line's good units x
``load.backflush_per_unit``, as the virtual MES), ``goods_receipt`` per completed lot of ``lot_size`` good
units per line, ``downtime`` per breakdown, per-line telemetry aggregates per telemetry interval (kept at the
edge, never sent to ERP), the plant's steady material issues and inventory moves (:mod:`twins.warehouse_arrivals`)
and the scenario's load bursts for the plant (:mod:`live.edge_bursts`); issues, moves and bursts are drawn
from the run's seed, the same arrivals the virtual plant carries.

It works on absolute counter values, so a lost or coalesced notification loses nothing; a counter that
goes down was reset (PLC reset or restart) and counts from zero again. No I/O and no clock: the host
(:mod:`live.edge`) feeds observations with their scenario time and stores what :meth:`EdgeAggregator.collect`
returns, with :meth:`EdgeAggregator.state`, in one commit of the :class:`~live.edge_store.EdgeStore`.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

from kernel.trace import (
    BACKFLUSH,
    DOWNTIME,
    GOODS_RECEIPT,
    INVENTORY_MOVE,
    MATERIAL_ISSUE,
    OPERATION_CONFIRMATION,
    SCRAP,
)
from live.edge_bursts import ArrivalSink, BurstArrivals, collect_bursts, collect_steady, first_undrawn, plan_bursts
from live.edge_store import OutboxEvent
from live.intervals import EdgeIntervals
from live.opcua_server import machine_path
from scenarios.spec import Scenario
from twins.mes import REPORT_JITTER
from twins.warehouse_arrivals import WarehouseArrivals

FLOW_CODES = {OPERATION_CONFIRMATION: "OC", SCRAP: "SC", GOODS_RECEIPT: "GR", DOWNTIME: "DT",
              MATERIAL_ISSUE: "MI", BACKFLUSH: "BF", INVENTORY_MOVE: "IM"}
WAREHOUSE_FLOWS = (MATERIAL_ISSUE, INVENTORY_MOVE)  # the WMS's flows (their source), the MES's otherwise


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
    intervals: EdgeIntervals = EdgeIntervals()  # scenario seconds; the host runs them at 1/speed
    # Each machine's confirmation comes at the interval's boundary plus its own offset in [0, report_jitter),
    # as the virtual MES reports them (twins.mes): not all machines of a plant in the same instant.
    report_jitter: float = 0.0
    # The component each line's good output consumes (None: no backflush), its unit and quantity per good unit.
    backflush_item: str | None = None
    backflush_unit: str = "KG"
    backflush_per_unit: float = 0.0
    warehouse: WarehouseArrivals | None = None  # steady issues and moves (replication 0's draw, as the virtual run)

    @classmethod
    def from_scenario(cls, scenario: Scenario, plant_id: str) -> EdgeConfig:
        """The edge settings of ``plant_id`` (error names the known plants)."""
        from live.plant_host import find_plant

        index, plant = find_plant(scenario, plant_id)
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
            intervals=EdgeIntervals.of(plant.edge),
            report_jitter=REPORT_JITTER,
            backflush_item=load.backflush_item,
            backflush_unit=plant.component_unit or load.backflush_unit,
            backflush_per_unit=load.backflush_per_unit,
            warehouse=WarehouseArrivals(scenario, index, replication=0),
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
    steady_until: float = 0.0  # steady warehouse arrivals before this scenario time are stored
    flush_acc: list[int] = field(default_factory=list)  # good units per line since the last backflush
    flush_due: list[list] = field(default_factory=list)  # [time, line, good units] of backflushes not yet stored

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
            self._flush_acc()[line] += delta
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
                    s.confirm_due[str(m)] = boundary + self._report_offset(m, boundary)
            self._close_backflush(boundary)
            s.next_confirm = boundary + c.confirmation_interval
        budget = math.inf if room is None else room
        out: list[OutboxEvent] = []
        for key in sorted(s.confirm_due, key=int):
            if s.confirm_due[key] > now:  # this machine reports a little later in the interval
                continue
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
        budget = self._collect_backflush(now, budget, out)
        s.burst_sent.extend([0] * (len(c.bursts) - len(s.burst_sent)))  # a state saved before bursts existed
        sink = self._arrival_sink(out)
        budget = collect_bursts(c.bursts, s.burst_sent, now, budget, sink)
        if c.warehouse is not None:
            s.steady_until = collect_steady(c.warehouse, s.steady_until, now, budget, sink)
        return out

    def _arrival_sink(self, out: list[OutboxEvent]) -> ArrivalSink:
        """Stores a drawn arrival (burst or steady) in ``out``: issues and moves from the WMS, as in the virtual
        trace; ``line`` 0-based, ``item`` None for the line's product."""

        def sink(flow: str, line: int, item: str | None, qty: float, unit: str, t: float) -> None:
            out.append(self._event(flow, f"Line{line + 1:02d}", item or self.config.item_of_line(line), "", qty,
                                   unit, t, source="WMS" if flow in WAREHOUSE_FLOWS else "MES"))
        return sink

    def _report_offset(self, machine: int | str, boundary: float) -> float:
        """Where in ``[0, report_jitter)`` after ``boundary`` the machine's confirmation (or a line's backflush,
        ``machine`` = ``"BF<line>"``) comes: a uniform draw keyed by plant, machine and boundary (the same again
        after a restart)."""
        key = f"{self.config.plant}/{machine}/{boundary:.3f}".encode()
        return zlib.crc32(key) / 2**32 * self.config.report_jitter

    def _flush_acc(self) -> list[int]:
        acc = self.s.flush_acc  # a state saved before backflushes existed has none
        acc.extend([0] * (self.config.lines - len(acc)))
        return acc

    def _close_backflush(self, boundary: float) -> None:
        """At a confirmation boundary: each line with good output since the last one backflushes it, a little
        after the boundary (the line's own offset in the report jitter, as the virtual MES)."""
        if self.config.backflush_item is None:
            return
        acc = self._flush_acc()
        for li, units in enumerate(acc):
            if units > 0:
                self.s.flush_due.append([boundary + self._report_offset(f"BF{li}", boundary), li, units])
                acc[li] = 0

    def _collect_backflush(self, now: float, budget: float, out: list[OutboxEvent]) -> float:
        """Backflushes due by ``now``, at most ``budget`` of them; returns the budget left."""
        c, waiting = self.config, []
        for t, li, units in sorted(self.s.flush_due):
            if t > now or budget < 1:
                waiting.append([t, li, units])
                continue
            out.append(self._event(BACKFLUSH, f"Line{li + 1:02d}", c.backflush_item or "", "",
                                   units * c.backflush_per_unit, c.backflush_unit, t))
            budget -= 1
        self.s.flush_due = waiting
        return budget

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

    def drawn_through(self, now: float) -> float:
        """The scenario time before which every event due by ``now`` is collected: ``now`` itself unless some
        wait for room in a full outbox (counter deltas, lots, downtime, backflushes or drawn arrivals)."""
        s, c = self.s, self.config
        waiting = [t for t in s.confirm_due.values() if t <= now] + [t for lots in s.lots_ready for t in lots]
        waiting += [float(start) for _, start, _ in s.downtime] + [f[0] for f in s.flush_due if f[0] <= now]
        waiting.append(first_undrawn(c.bursts, s.burst_sent, c.warehouse, s.steady_until, now))
        return min(min(waiting), now)

    def state(self) -> dict:
        """The JSON-able state to save with the events just collected."""
        return dict(self.s.__dict__)

    def _event(self, flow: str, line: str, item: str, lot: str, qty: float, unit: str, t: float,
               source: str = "MES", target: str = "ERP") -> OutboxEvent:
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
