"""The one trace schema every engine writes and every report reads.

One row per business transaction copy that reached the integration layer: its hop timestamps in
scenario seconds (NaN where the hop was never reached), ids, flow, plant, quantities and outcome.
A redelivered copy of a transaction is a second row with the same ``txn_id``.
"""

from __future__ import annotations

import pyarrow as pa

# Business flows (ARCHITECTURE §2). Values are stable strings: they appear in Parquet and reports.
ORDER_RELEASE = "order_release"
MATERIAL_ISSUE = "material_issue"
BACKFLUSH = "backflush"
OPERATION_CONFIRMATION = "operation_confirmation"
SCRAP = "scrap"
GOODS_RECEIPT = "goods_receipt"
QUALITY_HOLD = "quality_hold"
QUALITY_RELEASE = "quality_release"
INVENTORY_MOVE = "inventory_move"
SHIPMENT = "shipment"
TELEMETRY = "telemetry"
DOWNTIME = "downtime"
MASTER_DATA = "master_data"

FLOWS: tuple[str, ...] = (
    ORDER_RELEASE,
    MATERIAL_ISSUE,
    BACKFLUSH,
    OPERATION_CONFIRMATION,
    SCRAP,
    GOODS_RECEIPT,
    QUALITY_HOLD,
    QUALITY_RELEASE,
    INVENTORY_MOVE,
    SHIPMENT,
    TELEMETRY,
    DOWNTIME,
    MASTER_DATA,
)

# Flows that post quantities into the ERP ledger (inventory-posting SLA, reconciliation).
ERP_POSTING_FLOWS: tuple[str, ...] = (
    MATERIAL_ISSUE,
    BACKFLUSH,
    OPERATION_CONFIRMATION,
    SCRAP,
    GOODS_RECEIPT,
    INVENTORY_MOVE,
    SHIPMENT,
)

# Outcomes.
DELIVERED = "delivered"
DUPLICATE_SUPPRESSED = "duplicate_suppressed"
DEAD_LETTERED = "dead_lettered"
REJECTED = "rejected"
IN_FLIGHT = "in_flight"
OUTCOMES: tuple[str, ...] = (DELIVERED, DUPLICATE_SUPPRESSED, DEAD_LETTERED, REJECTED, IN_FLIGHT)

# Reasons with a fixed meaning for the invariants.
REASON_EDGE_OVERFLOW = "edge_overflow_dropped"  # the edge buffer's drop policy discarded it: a loss
REASON_UNMAPPED_ITEM = "unmapped_item"
REASON_UNKNOWN_UNIT = "unknown_unit"
REASON_RETRIES_EXHAUSTED = "retries_exhausted"
REASON_REDELIVERY = "broker_redelivery"

HOPS: tuple[str, ...] = ("t_created", "t_edge", "t_broker", "t_delivered", "t_acked")

TRACE_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("replication", pa.int32()),
        pa.field("txn_id", pa.string()),
        pa.field("correlation_id", pa.string()),
        pa.field("flow", pa.string()),
        pa.field("plant", pa.string()),
        pa.field("line", pa.string()),
        pa.field("source", pa.string()),
        pa.field("target", pa.string()),
        pa.field("item", pa.string()),
        pa.field("lot", pa.string()),
        pa.field("qty", pa.float64()),
        pa.field("unit", pa.string()),
        pa.field("schema_version", pa.string()),
        pa.field("t_created", pa.float64()),
        pa.field("t_edge", pa.float64()),
        pa.field("t_broker", pa.float64()),
        pa.field("t_delivered", pa.float64()),
        pa.field("t_acked", pa.float64()),
        pa.field("attempts", pa.int32()),
        pa.field("outcome", pa.string()),
        pa.field("reason", pa.string()),
    ]
)

# ERP ledger: one row per posting the ERP accepted. The ERP does not de-duplicate: a transaction
# posted twice is two rows with the same txn_id.
LEDGER_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("replication", pa.int32()),
        pa.field("txn_id", pa.string()),
        pa.field("flow", pa.string()),
        pa.field("plant", pa.string()),
        pa.field("item", pa.string()),
        pa.field("qty", pa.float64()),
        pa.field("unit", pa.string()),
        pa.field("erp", pa.string()),
        pa.field("t_posted", pa.float64()),
    ]
)

# Lot ledger (WMS/QMS view): every completed lot, its quality disposition and shipment.
LOTS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),
        pa.field("replication", pa.int32()),
        pa.field("lot", pa.string()),
        pa.field("plant", pa.string()),
        pa.field("item", pa.string()),
        pa.field("requires_inspection", pa.bool_()),
        pa.field("held", pa.bool_()),
        pa.field("t_completed", pa.float64()),
        pa.field("t_hold", pa.float64()),
        pa.field("t_hold_at_wms", pa.float64()),
        pa.field("t_release", pa.float64()),
        pa.field("t_release_at_wms", pa.float64()),
        pa.field("t_shipped", pa.float64()),
        pa.field("shipped_while_held", pa.bool_()),
    ]
)
