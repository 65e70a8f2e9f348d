"""One plant as a twin on an injected SimPy environment: machine bank, MES, WMS, edge, and the
plant-facing half of QMS and order release.

The SimPy processes are coarse (a reporting tick per interval, a shift change per shift); the
high-volume records they cause are numpy arrays. ``step(t_to)`` runs the environment to ``t_to`` and
returns the window's outbound batch (to the integration hub), the rows it finished locally (order
releases, quality messages, downtime) and the lots it closed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import simpy

from integration.mapping import Mapped, PlantMapping
from kernel import trace
from kernel.routing import Routing
from scenarios.generator import FaultPlan, Vocabulary
from scenarios.spec import PlantSpec, Scenario
from twins import qms, wms
from twins.bursts import BurstArrivals, draw_bursts
from twins.erp import draw_latency
from twins.machines import IntervalSteps, MachineBank
from twins.mes import Mes
from twins.warehouse_arrivals import FlowArrivals, WarehouseArrivals
from virtual import batch as B
from virtual.load_replay import load_factor
from virtual.store_forward import StoreAndForward

F = B.FLOW_CODE
LOT_LINE_BASE = 1_000_000  # lot code = line * LOT_LINE_BASE + number


@dataclass(frozen=True)
class PlantWindow:
    outbound: B.Batch  # source columns, for the hub
    local: B.Batch  # finished rows (all columns)
    lots: dict[str, np.ndarray]


def _multiples(step: float, after: float, upto: float) -> np.ndarray:
    """Multiples of ``step`` in (after, upto]."""
    return np.arange(np.floor(after / step) + 1, np.floor(upto / step) + 1) * step


def _coarsen(steps: IntervalSteps, bounds: np.ndarray) -> IntervalSteps:
    """Sum fine intervals into the coarser ones ending at ``bounds`` (each bound is a fine bound)."""
    ends = np.searchsorted(steps.bounds, bounds)
    starts = np.concatenate([[0], ends[:-1] + 1])
    total = lambda m: np.add.reduceat(m, starts, axis=1)  # noqa: E731
    return IntervalSteps(steps.t_from, bounds, total(steps.good), total(steps.scrap), total(steps.running_time),
                         steps.down_machine, steps.down_start, steps.down_end)


class PlantTwin:
    """A plant's shop floor and edge. ``plant_index`` is its position in the scenario's plant list."""

    def __init__(self, env: simpy.Environment, scenario: Scenario, plant: PlantSpec, plant_index: int,
                 vocab: Vocabulary, faults: FaultPlan, rng: np.random.Generator, replication: int = 0):
        self.env = env
        self.scenario = scenario
        self.plant = plant
        self.index = plant_index
        self.bursts = draw_bursts(scenario, plant_index)  # the scenario's bursts, the live edge's arrivals
        self.warehouse = WarehouseArrivals(scenario, plant_index, replication)  # replication 0: the live edge's
        self.vocab = vocab
        self.faults = faults
        self.rng = rng
        self.load = scenario.load
        self.wan = faults.wan_outage[plant.id]
        self.routing = Routing.of(scenario)
        self.bank = MachineBank.for_plant(plant, rng)
        self.mes = Mes(plant.lines, self.bank.line_of, self.load.lot_size, rng)
        resumes = scenario.landscape.integration.replay_edge_resumes.get(plant.id, ())
        self.edge = StoreAndForward(plant.edge, self.wan, resumes=tuple(resumes))
        products = plant.products
        self.line_item = np.array([vocab.item(products[i % len(products)]) for i in range(plant.lines)], np.int16)
        self.unit = vocab.unit(plant.unit)
        self.component_unit = vocab.unit(plant.component_unit or self.load.backflush_unit)
        mapping = PlantMapping.from_spec(plant, scenario.landscape.items)
        self.line_orderable = np.array(
            [isinstance(mapping.map_one(products[i % len(products)], 1, plant.unit), Mapped)
             for i in range(plant.lines)]
        )
        master = scenario.landscape.items
        canonical = [mapping.items.get(products[i % len(products)]) for i in range(plant.lines)]
        self.line_inspect = np.array([c in master and master[c].inspection for c in canonical])
        self.line_hold_rate = np.array([master[c].hold_rate if c in master else 0.0 for c in canonical])
        self.seq = 0
        self._pending: list[B.Batch] = []  # outbound records, possibly dated in a later window
        self._local: list[B.Batch] = []
        self._lots: list[dict[str, np.ndarray]] = []
        self._telemetry_carry = 0.0  # good units since the last telemetry tick
        env.process(self._shift_changes())

    # -------------------------------------------------------------------------------- processes
    def _shift_changes(self):
        shift = self.load.shift
        while True:
            yield self.env.timeout(shift.length)
            # Handover: lines stop briefly while crews change (a third of the burst window).
            self.bank.schedule_changeover(self.env.now, shift.change_burst_duration / 3)

    # ------------------------------------------------------------------------------------ records
    def _new(self, flow: str, t: np.ndarray, line: np.ndarray, item, qty, unit, lot=-1) -> B.Batch:
        n = t.size
        seq = np.arange(self.seq, self.seq + n, dtype=np.int64)
        self.seq += n
        return B.make(n, B.SOURCE_COLUMNS, seq=seq, flow=F[flow], line=line, item=item, qty=qty, unit=unit,
                      lot=lot, t_created=t)

    def _report(self, t_from: float, t_to: float) -> None:
        """Advance the machine bank over the window's reporting intervals and record what the MES reports."""
        bounds = _multiples(self.load.confirmation_interval, self.bank.t, t_to)
        if bounds.size == 0:
            return
        # Telemetry intervals inside the reporting span are stepped too (finer bins, same dynamics).
        ticks = _multiples(self.load.telemetry_interval, self.bank.t, bounds[-1])
        fine = np.union1d(bounds, ticks)
        steps = self.bank.advance_intervals(fine)
        self._telemetry(steps, ticks)
        out = self.mes.report_many(_coarsen(steps, bounds))
        cat = lambda name: getattr(out, name)  # noqa: E731
        li = self.bank.line_of
        conf_line, scrap_line = li[cat("conf_machine")], li[cat("scrap_machine")]
        lot_line = cat("lot_line")
        flush_line = cat("flush_line")
        self._pending += [
            self._new(trace.OPERATION_CONFIRMATION, cat("conf_time"), conf_line, self.line_item[conf_line],
                      cat("conf_good"), self.unit),
            self._new(trace.SCRAP, cat("scrap_time"), scrap_line, self.line_item[scrap_line], cat("scrap_qty"),
                      self.unit),
            self._new(trace.BACKFLUSH, cat("flush_time"), flush_line, self.vocab.item(self.load.backflush_item),
                      cat("flush_units") * self.load.backflush_per_unit, self.component_unit),
            self._new(trace.GOODS_RECEIPT, cat("lot_time"), lot_line, self.line_item[lot_line],
                      float(self.load.lot_size), self.unit, lot_line * LOT_LINE_BASE + cat("lot_number")),
        ]
        if steps.down_machine.size:
            self._local.append(self._downtime(steps.down_start, li[steps.down_machine],
                                              steps.down_end - steps.down_start))

    def _telemetry(self, steps: IntervalSteps, ticks: np.ndarray) -> None:
        """Edge aggregates per telemetry interval (good units of the plant), streamed to analytics."""
        if ticks.size == 0:
            return
        produced = np.concatenate([[self._telemetry_carry], np.cumsum(steps.good.sum(axis=0))])
        at = np.searchsorted(steps.bounds, ticks) + 1
        per_tick = np.diff(np.concatenate([[0.0], produced[at]]))
        self._telemetry_carry = produced[-1] - produced[at[-1]]
        line = np.zeros(ticks.size, dtype=np.int16)
        rows = self._new(trace.TELEMETRY, ticks, line, self.line_item[line], per_tick, self.unit)
        t_broker = self.wan.end_of(ticks) + self.plant.wan.latency + self.scenario.landscape.integration.broker.latency
        rows["t_edge"], rows["t_broker"] = ticks.copy(), t_broker
        self._local.append(B.with_results(rows, plant=self.index, target=B.TARGET_CODE["analytics"],
                                          t_delivered=t_broker, t_acked=t_broker, attempts=1,
                                          outcome=B.OUTCOME_CODE[trace.DELIVERED]))

    def _warehouse(self, t_from: float, t_to: float) -> None:
        """Material issues per line and inventory moves per plant (steady, with shift-change extras) and the
        scenario's bursts, all drawn from the run's seed as the live edge draws them (twins/warehouse_arrivals.py,
        twins/bursts.py)."""
        for flow in self.warehouse.between(t_from, t_to):
            self._pending.append(self._warehouse_records(flow))
        for burst in self.bursts:
            times = np.asarray(burst.times, dtype=float)
            sel = np.flatnonzero((times >= t_from) & (times < t_to))
            if sel.size:
                self._pending.append(self._burst_records(burst, times[sel], sel))

    def _burst_records(self, burst: BurstArrivals, t: np.ndarray, sel: np.ndarray) -> B.Batch:
        line = np.asarray(burst.lines, dtype=np.int16)[sel]
        qty = np.asarray(burst.qty, dtype=float)[sel]
        return self._warehouse_records(FlowArrivals(burst.flow, burst.item, burst.unit, t, line, qty))

    def _warehouse_records(self, arrivals: FlowArrivals) -> B.Batch:
        line = arrivals.lines
        if arrivals.item is None:  # the line's product
            return self._new(arrivals.flow, arrivals.times, line, self.line_item[line], arrivals.qty, self.unit)
        return self._new(arrivals.flow, arrivals.times, line, self.vocab.item(arrivals.item), arrivals.qty,
                         self.component_unit)

    def _orders(self, t_from: float, t_to: float) -> B.Batch:
        """Production orders released by the ERP to this plant's MES, validated and acknowledged."""
        lines = self.plant.lines
        t = wms.poisson_times(self.load.orders * lines, t_from, t_to, self.rng)
        line = self.rng.integers(0, lines, t.size).astype(np.int16)
        erp = self.routing.plant_codes(self.index, t)
        released = t.copy()
        for code, kind in enumerate(("legacy", "cloud")):
            mask = erp == code
            released[mask] = self.faults.erp_outage[kind].end_of(t[mask])
        erp_spec_latency = np.where(erp == 0, self.scenario.erp_for("legacy").network_latency,
                                    self.scenario.erp_for("cloud").network_latency)
        t_broker = released + erp_spec_latency + self.scenario.landscape.integration.broker.latency
        t_delivered = self.wan.end_of(t_broker) + self.plant.wan.latency
        t_acked = t_delivered + self.load.mes_ack + self.plant.wan.latency
        # A down ERP releases nothing: the order exists (t_created) once the ERP is back and releases it.
        order = np.argsort(released, kind="stable")
        released, line, t_broker, t_delivered, t_acked = (a[order] for a in (released, line, t_broker, t_delivered,
                                                                              t_acked))
        valid = self.line_orderable[line]
        rows = self._new(trace.ORDER_RELEASE, released, line, self.line_item[line], float(self.load.lot_size),
                         self.unit)
        rows["t_broker"] = t_broker
        return B.with_results(
            rows, plant=self.index, target=B.TARGET_CODE["MES"], t_delivered=t_delivered,
            t_acked=np.where(valid, t_acked, np.nan), attempts=1,
            outcome=np.where(valid, B.OUTCOME_CODE[trace.DELIVERED], B.OUTCOME_CODE[trace.REJECTED]),
            reason=np.where(valid, 0, B.REASON_CODE["order_item_not_released_to_plant"]),
        )

    def _master_data(self, t_from: float, t_to: float) -> B.Batch:
        """Master-data versions the ERP publishes to this plant's MES in (t_from, t_to]: version ``k`` at
        ``k * load.master_data_interval`` (a down ERP publishes it once back), its number in ``qty``."""
        every = self.load.master_data_interval
        t = _multiples(every, t_from, t_to) if every > 0 else np.empty(0)
        version = np.rint(t / every) if every > 0 else t
        erp = self.routing.plant_codes(self.index, t)
        released, latency = t.copy(), np.empty(t.size)
        for code, kind in enumerate(("legacy", "cloud")):
            mask = erp == code
            released[mask] = self.faults.erp_outage[kind].end_of(t[mask])
            latency[mask] = self.scenario.erp_for(kind).network_latency if mask.any() else 0.0
        t_broker = released + latency + self.scenario.landscape.integration.broker.latency
        t_delivered = self.wan.end_of(t_broker) + self.plant.wan.latency
        line = np.zeros(t.size, dtype=np.int16)
        rows = self._new(trace.MASTER_DATA, released, line, self.line_item[line], version, self.unit)
        rows["t_broker"] = t_broker
        return B.with_results(rows, plant=self.index, target=B.TARGET_CODE["MES"], t_delivered=t_delivered,
                              t_acked=t_delivered, attempts=1, outcome=B.OUTCOME_CODE[trace.DELIVERED])

    def _downtime(self, start: np.ndarray, line: np.ndarray, duration: np.ndarray) -> B.Batch:
        rows = self._new(trace.DOWNTIME, start, line, self.line_item[line], duration / 60.0, self.vocab.unit("min"))
        t_broker = self.wan.end_of(start) + self.plant.wan.latency
        rows["t_edge"], rows["t_broker"] = start.copy(), t_broker
        return B.with_results(rows, plant=self.index, target=B.TARGET_CODE["maintenance"], t_delivered=t_broker,
                              t_acked=t_broker, attempts=1, outcome=B.OUTCOME_CODE[trace.DELIVERED])

    def _to_wms(self, flow: str, t: np.ndarray, lot: np.ndarray, line: np.ndarray) -> tuple[B.Batch, np.ndarray]:
        """QMS hold/release messages to this plant's WMS; returns the rows and arrival times."""
        broker = self.scenario.landscape.integration.broker.latency
        t_broker = t + broker
        downlink = draw_latency(self.scenario.landscape.integration.hops.downlink, self.rng, t.size)  # calibrated
        t_at_wms = self.wan.end_of(t_broker) + self.plant.wan.latency + downlink
        rows = self._new(flow, t, line, self.line_item[line], float(self.load.lot_size), self.unit, lot)
        rows["t_broker"] = t_broker
        rows = B.with_results(rows, plant=self.index, target=B.TARGET_CODE["WMS"], t_delivered=t_at_wms,
                              t_acked=t_at_wms, attempts=1, outcome=B.OUTCOME_CODE[trace.DELIVERED])
        return rows, t_at_wms

    @staticmethod
    def _to_mes(rows: B.Batch) -> B.Batch:
        """The plant MES's copies of QMS hold/release messages (same ``txn_id``): one delivery to the plant
        serves its WMS and MES, so the same times as the WMS rows (as the live plant, ``live/plant_mes.py``)."""
        out = dict(rows)
        out["target"] = np.full(B.size(rows), B.TARGET_CODE["MES"], dtype=rows["target"].dtype)
        return out

    def _to_erp(self, rows: B.Batch) -> B.Batch:
        """The ERP's copies of QMS hold/release messages (same ``txn_id``): to the ERP serving the plant at the
        decision, enterprise-side (no WAN link), after the ERP's network latency; a down ERP takes them once back
        (as the live ERP twin, ``live/erp_quality.py``)."""
        out = dict(rows)
        code = self.routing.plant_codes(self.index, rows["t_created"])
        t = rows["t_broker"].copy()
        for c, kind in enumerate(("legacy", "cloud")):
            mask = code == c
            if mask.any():
                t[mask] = self.faults.erp_outage[kind].end_of(t[mask] + self.scenario.erp_for(kind).network_latency)
        out["target"], out["t_delivered"], out["t_acked"] = code.astype(np.int8), t, t.copy()
        return out

    def _refused(self, t_refused: np.ndarray, receipts: B.Batch, line: np.ndarray, lot: np.ndarray) -> B.Batch:
        """Shipment attempts the WMS refused because the lot's hold had reached it (as the live WMS writes them:
        a ``rejected`` shipment row, reason ``lot_on_quality_hold``, at the attempt); none after the run's end."""
        sel = np.flatnonzero(t_refused <= self.scenario.run.duration)
        rows = self._new(trace.SHIPMENT, t_refused[sel], line[sel], receipts["item"][sel], receipts["qty"][sel],
                         self.unit, lot[sel])
        rows["t_edge"] = rows["t_created"].copy()  # refused at the plant: in the edge's store, never forwarded
        return B.with_results(rows, plant=self.index, attempts=0,
                              target=self.routing.plant_codes(self.index, rows["t_created"]).astype(np.int8),
                              outcome=B.OUTCOME_CODE[trace.REJECTED], reason=B.REASON_CODE[trace.REASON_LOT_ON_HOLD])

    def _quality(self, receipts: B.Batch) -> None:
        """Inspect newly received lots, message the WMS, gate goods receipts, plan shipments."""
        if B.size(receipts) == 0:
            return
        lot, line = receipts["lot"], receipts["line"]
        known = receipts["t_broker"]  # the QMS learns of the lot from the goods-receipt event
        result = qms.disposition(known, self.line_inspect[line], self.line_hold_rate[line],
                                 self.load.inspection_time, self.load.hold_duration, self.rng)
        held = result.held & ~np.isnan(known)
        hold_rows, hold_at_wms = self._to_wms(trace.QUALITY_HOLD, result.t_hold[held], lot[held], line[held])
        insp = result.requires_inspection & ~np.isnan(known)
        rel_rows, rel_at = self._to_wms(trace.QUALITY_RELEASE, result.t_release[insp], lot[insp], line[insp])
        t_hold_at_wms = np.full(lot.size, np.nan)
        t_hold_at_wms[held] = hold_at_wms
        t_release_at_wms = np.full(lot.size, np.nan)
        t_release_at_wms[insp] = rel_at
        receipts["t_gate"] = np.where(insp, result.t_release, np.nan)
        self._local += [hold_rows, rel_rows, self._to_mes(hold_rows), self._to_mes(rel_rows),
                        self._to_erp(hold_rows), self._to_erp(rel_rows)]
        gate = self.scenario.landscape.integration.quality_gate
        planned = wms.plan_times(receipts["t_created"], self.load.ship_delay, self.rng)
        t_ship = wms.ship_planned(planned, insp, t_hold_at_wms, t_release_at_wms, gate)
        ships = ~np.isnan(t_ship)
        shipped_while_held = result.held & (t_ship < result.t_release)
        self._pending.append(self._new(trace.SHIPMENT, t_ship[ships], line[ships], receipts["item"][ships],
                                       receipts["qty"][ships], self.unit, lot[ships]))
        self._local.append(self._refused(wms.refusal_times(planned, insp, t_hold_at_wms, t_release_at_wms, gate),
                                         receipts, line, lot))
        self._lots.append({
            "lot": lot, "line": line, "item": receipts["item"], "requires_inspection": insp,
            "held": held, "t_completed": receipts["t_created"], "t_hold": np.where(held, result.t_hold, np.nan),
            "t_hold_at_wms": t_hold_at_wms, "t_release": np.where(insp, result.t_release, np.nan),
            "t_release_at_wms": t_release_at_wms, "t_shipped": t_ship, "shipped_while_held": shipped_while_held,
        })

    # ------------------------------------------------------------------------------------- window
    def _take_due(self, t_to: float) -> B.Batch:
        """Pending outbound records dated before ``t_to``, in time order."""
        pool = B.concat(self._pending, B.SOURCE_COLUMNS)
        due = pool["t_created"] < t_to
        self._pending = [B.take(pool, ~due)]
        idx = np.flatnonzero(due)
        return B.take(pool, idx[np.argsort(pool["t_created"][idx], kind="stable")])

    def _through_edge(self, out: B.Batch) -> np.ndarray:
        """Stamp t_edge and t_broker on ``out``; return the mask of records the edge dropped.

        With hop service times (``landscape.integration.hops``) a record reaches the edge's outbox after
        its ``edge`` hop (so the edge sees them in that order) and the broker after ``edge_to_broker``."""
        integ = self.scenario.landscape.integration
        n = B.size(out)
        load = load_factor(integ.replay_load, out["t_created"])
        accept = out["t_created"] + load * draw_latency(integ.hops.edge, self.rng, n)
        order = np.argsort(accept, kind="stable")
        t_edge, t_forward, dropped = (np.empty(n), np.empty(n), np.empty(n, dtype=bool))
        t_edge[order], t_forward[order], dropped[order] = self.edge.forward(accept[order])
        hop = load * draw_latency(integ.hops.edge_to_broker, self.rng, n)
        out["t_edge"] = t_edge
        out["t_broker"] = np.where(dropped, np.nan, t_forward + self.plant.wan.latency + integ.broker.latency + hop)
        return dropped

    def step(self, t_to: float) -> PlantWindow:
        """Advance the plant to ``t_to`` and hand over what the window produced."""
        t_from = self.env.now
        self.env.run(until=t_to)
        while self.env.peek() <= t_to:  # a shift change due exactly at the window's end belongs here
            self.env.step()
        self._report(t_from, t_to)
        self._warehouse(t_from, t_to)
        local_orders = self._orders(t_from, t_to)
        local_master = self._master_data(t_from, t_to)
        out = self._take_due(t_to)
        before = copy.copy(self.edge)  # its state is reassigned, never mutated in place: a shallow copy keeps it
        dropped = self._through_edge(out)
        receipts = B.take(out, (out["flow"] == F[trace.GOODS_RECEIPT]) & ~dropped)
        self._quality(receipts)
        shipped_now = self._take_due(t_to)
        if B.size(shipped_now):
            # Lots that ship inside this window: replay the edge with their shipments in time order.
            self.edge = before
            merged = B.concat([out, shipped_now])
            out = B.take(merged, np.argsort(merged["t_created"], kind="stable"))
            dropped = self._through_edge(out)
        order = np.argsort(receipts["seq"])
        is_receipt = np.isin(out["seq"], receipts["seq"])
        at = order[np.searchsorted(receipts["seq"][order], out["seq"][is_receipt])]
        out["t_gate"][is_receipt] = receipts["t_gate"][at]
        lost = B.with_results(B.take(out, dropped), plant=self.index, attempts=0,
                              outcome=B.OUTCOME_CODE[trace.REJECTED], reason=B.REASON_CODE[trace.REASON_EDGE_OVERFLOW])
        lost["target"] = self.routing.plant_codes(self.index, lost["t_created"]).astype(np.int8)
        local = B.concat([local_orders, local_master, lost, *self._local])
        self._local = []
        lots = {k: np.concatenate([d[k] for d in self._lots]) for k in self._lots[0]} if self._lots else {}
        self._lots = []
        return PlantWindow(B.take(out, ~dropped), local, lots)
