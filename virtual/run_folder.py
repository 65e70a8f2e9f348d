"""The virtual engine's columnar results as the run folder's tables (written by :mod:`kernel.run_folder`).

Codes become text here, with Arrow kernels (no Python loop over rows): a week of a dozen plants is
more than a million rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kernel import trace
from scenarios.generator import Vocabulary
from scenarios.spec import Scenario
from virtual import batch as B
from virtual.plant import LOT_LINE_BASE

# Which system creates each flow.
FLOW_SOURCE = {
    trace.ORDER_RELEASE: "ERP", trace.MATERIAL_ISSUE: "WMS", trace.BACKFLUSH: "MES",
    trace.OPERATION_CONFIRMATION: "MES", trace.SCRAP: "MES", trace.GOODS_RECEIPT: "MES",
    trace.QUALITY_HOLD: "QMS", trace.QUALITY_RELEASE: "QMS", trace.INVENTORY_MOVE: "WMS",
    trace.SHIPMENT: "WMS", trace.TELEMETRY: "PLC", trace.DOWNTIME: "PLC", trace.MASTER_DATA: "ERP",
}


def _text(codes: np.ndarray, names: list[str] | tuple[str, ...]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(list(names))).cast(pa.string())


def _repeat(text: str, n: int) -> pa.Array:
    """``text`` ``n`` times (a numpy array of ``n`` copies cost a tenth of a fleet run's table building)."""
    return pa.array([text]).take(pa.array(np.zeros(n, dtype=np.int32)))


def _ids(plant_names: pa.Array, seq: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(plant_names, pc.cast(pa.array(seq), pa.string()), "-")


def _lot_ids(plant_names: pa.Array, lot: np.ndarray) -> pa.Array:
    line = pc.utf8_lpad(pc.cast(pa.array(lot // LOT_LINE_BASE + 1), pa.string()), 2, "0")
    number = pc.utf8_lpad(pc.cast(pa.array(lot % LOT_LINE_BASE), pa.string()), 6, "0")
    lot_ids = pc.binary_join_element_wise(plant_names, pc.binary_join_element_wise("L", line, ""), number, "-")
    return pc.if_else(pa.array(lot >= 0), lot_ids, pa.scalar("", pa.string()))


def trace_table(rows: B.Batch, scenario: Scenario, run_id: str) -> pa.Table:
    """The trace (ARCHITECTURE §3) of an engine's finished rows; hops after the run's end become NaN."""
    vocab = Vocabulary.of(scenario)
    plants = scenario.landscape.all_plants
    end = scenario.run.duration
    n = B.size(rows)
    plant_names = _text(rows["plant"], [p.id for p in plants])
    txn = _ids(plant_names, rows["seq"])
    lots = _lot_ids(plant_names, rows["lot"])
    hops = {h: np.where(rows[h] > end, np.nan, rows[h]) for h in trace.HOPS + trace.ERP_QUEUE_TIMES}
    outcome = rows["outcome"].copy()
    reached = ~np.isnan(hops["t_delivered"])
    late = (outcome == B.OUTCOME_CODE[trace.DELIVERED]) & ~reached
    outcome[late] = B.OUTCOME_CODE[trace.IN_FLIGHT]
    hops["t_acked"] = np.where(late, np.nan, hops["t_acked"])
    flow_source = [FLOW_SOURCE[f] for f in trace.FLOWS]
    line_names = [f"L{i + 1:02d}" for i in range(int(rows["line"].max(initial=0)) + 1)]
    columns = {
        "run_id": _repeat(run_id, n),
        "replication": pa.array(rows["replication"].astype(np.int32)),
        "txn_id": txn,
        "correlation_id": pc.if_else(pa.array(rows["lot"] >= 0), lots, txn),
        "flow": _text(rows["flow"], trace.FLOWS),
        "plant": plant_names,
        "line": _text(rows["line"], line_names),
        "source": _text(rows["flow"], flow_source),
        "target": _text(rows["target"], B.TARGETS),
        "item": _text(rows["item"], vocab.items),
        "lot": lots,
        "qty": pa.array(rows["qty"]),
        "unit": _text(rows["unit"], vocab.units),
        "schema_version": _text(rows["plant"], [p.schema_version for p in plants]),
        **{h: pa.array(hops[h]) for h in trace.HOPS},
        "attempts": pa.array(rows["attempts"].astype(np.int32)),
        "outcome": _text(outcome, trace.OUTCOMES),
        "reason": _text(rows["reason"], B.REASONS),
        **{h: pa.array(hops[h]) for h in trace.ERP_QUEUE_TIMES},
    }
    return pa.table(columns, schema=trace.TRACE_SCHEMA)


def ledger_table(rows: B.Batch, scenario: Scenario, run_id: str) -> pa.Table:
    """ERP postings (delivered rows to an ERP) accepted before the run's end."""
    ledger = B.postings(rows)
    rows = B.take(ledger, ledger["t_delivered"] <= scenario.run.duration)
    vocab = Vocabulary.of(scenario)
    plant_names = _text(rows["plant"], [p.id for p in scenario.landscape.all_plants])
    return pa.table({
        "run_id": _repeat(run_id, B.size(rows)),
        "replication": pa.array(rows["replication"].astype(np.int32)),
        "txn_id": _ids(plant_names, rows["seq"]),
        "flow": _text(rows["flow"], trace.FLOWS),
        "plant": plant_names,
        "item": _text(rows["item"], vocab.items),
        "qty": pa.array(rows["qty"]),
        "unit": _text(rows["unit"], vocab.units),
        "erp": _text(rows["target"], [t.removeprefix("erp-") for t in B.TARGETS]),
        "t_posted": pa.array(rows["t_delivered"]),
    }, schema=trace.LEDGER_SCHEMA)


def lots_table(lots: dict[str, np.ndarray], scenario: Scenario, run_id: str) -> pa.Table:
    """Every closed lot with its disposition and shipment (times after the run's end become NaN)."""
    if not lots:
        return trace.LOTS_SCHEMA.empty_table()
    vocab = Vocabulary.of(scenario)
    end = scenario.run.duration
    plant_names = _text(lots["plant"], [p.id for p in scenario.landscape.all_plants])
    clip = {k: np.where(lots[k] > end, np.nan, lots[k]) for k in
            ("t_completed", "t_hold", "t_hold_at_wms", "t_release", "t_release_at_wms", "t_shipped")}
    shipped_while_held = lots["shipped_while_held"] & ~np.isnan(clip["t_shipped"])
    return pa.table({
        "run_id": _repeat(run_id, len(lots["lot"])),
        "replication": pa.array(lots["replication"].astype(np.int32)),
        "lot": _lot_ids(plant_names, lots["lot"]),
        "plant": plant_names,
        "item": _text(lots["item"], vocab.items),
        "requires_inspection": pa.array(lots["requires_inspection"]),
        "held": pa.array(lots["held"] & ~np.isnan(clip["t_hold"])),
        **{k: pa.array(v) for k, v in clip.items()},
        "shipped_while_held": pa.array(shipped_while_held),
    }, schema=trace.LOTS_SCHEMA)
