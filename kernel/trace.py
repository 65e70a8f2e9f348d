"""The one trace schema every engine writes and every report reads.

One row per business transaction copy that reached the integration layer: its hop timestamps in
scenario seconds (NaN where the hop was never reached), ids, flow, plant, quantities and outcome.
A redelivered copy of a transaction is a second row with the same ``txn_id``.

Hop times, column by column (V: virtual engine, ``virtual/plant.py`` + ``virtual/hub.py``;
L: live engine, ``live/edge*.py`` + ``integration/workers/``, collected by ``live/collect.py``).
Every hop is NaN when not reached, and so is every hop after the run's end (the row is then in flight).

``t_created``
    When the source system created the record: the machine's count or the MES event (plant flows),
    the ERP's release (orders), the QMS disposition (quality hold/release), the WMS movement.
    V: drawn by the plant twin. L: the edge's reading of the OPC UA counters / event, or the burst time;
    the QMS's decision time (``live/qms_service.py``), the ERP release job's release (``live/order_release.py``),
    the plant WMS's shipment or refused shipment attempt (``live/plant_wms.py``).
``t_edge``
    When the plant edge took the record into its store-and-forward outbox (= ``t_created`` for the
    edge's own aggregates). NaN for flows that do not pass an edge (orders, quality messages).
``t_broker``
    When the message was stored in the broker (JetStream): after the WAN and broker latency; a WAN
    outage holds it at the edge. V: computed from the edge's forward time. L: the stored timestamp
    of the JetStream message. For orders, the ERP's release plus its network and broker latency (L: the
    stored time in the ``DOWNLINK`` stream, ``live/downlink.py``; likewise for quality messages, whose
    ``t_delivered`` is when the plant's endpoint applied them, after the plant's WAN link).
``t_delivered``
    When the target accepted this copy: the ERP's acceptance of a posting (= the ledger's
    ``t_posted``; L: after its configured service and its own processing of the request; V: after the
    service plus the calibrated processing ``landscape.integration.hops.erp``), the MES's receipt of an
    order, the WMS's (and the MES's) receipt of a quality message, the hand-off of telemetry and downtime to their
    analytics / maintenance consumers (V: at ``t_broker``; L: when the worker recorded the hand-off).
    NaN for a copy that was suppressed as a duplicate, dead-lettered, rejected or is still in flight:
    nothing was delivered.
``t_acked``
    When the flow is complete as its source sees it -- one meaning in both engines:

    - postings delivered to an ERP: the integration layer has recorded the ERP's acceptance (the
      broker ack of the message follows at once). V: = ``t_delivered``; L: the worker's clock when it
      wrote the delivery row, just after ``t_delivered``. A goods receipt of a lot under inspection is
      complete at the later of that and the lot's quality disposition (the QMS's ``t_release``; L: joined at
      collection, ``live/collect_downlink.py``), NaN while the lot awaits it;
    - orders (ERP -> MES): the MES's acknowledgement back at the ERP; NaN when the MES rejected it. L: the
      MES acks through the edge's outbox as an uplink event (``ACK-<order>``); the workers' hand-off of that
      ack is ``t_acked`` (collection folds the ack into its order's row, ``live/collect_downlink.py``);
    - flows to a consumer without an ack of its own (telemetry, downtime, quality messages to the WMS, their
      copies to the plant's MES -- rows of the same ``txn_id``, target ``MES``, with the WMS row's times: one
      delivery to the plant applies both, L: ``live/plant_mes.py``; only delivered copies are twinned, so a
      duplicate or dead-lettered delivery is counted once -- and their copies to the ERP serving the plant: rows
      of the same ``txn_id`` whose target is that ERP, enterprise side, so no WAN link; V: ``virtual/plant.py``,
      L: ``live/erp_quality.py``; not postings, no ledger rows): = ``t_delivered``;
    - a copy suppressed as a duplicate or dead-lettered: when the integration layer finished with it and
      acknowledged it to the broker (V: suppressed when handed out again after the ack wait; an
      unmappable message at ``t_broker``; retries exhausted at the last failed attempt);
    - rejected at the edge or still in flight: NaN (an order the MES rejected keeps its ``t_delivered``).

Master data (both engines): one ``master_data`` row per version and plant, the version number in ``qty``;
``t_created`` the ERP's release of the version (a down ERP releases it once back), ``t_delivered`` = ``t_acked``
when the plant's MES applied it (V: after the broker and the plant's WAN link; L: ``live/master_data.py``
through the downlink). Postings a plant creates in between count as version skew (``reports/skew.py``).

Shipments refused by the plant's WMS (both engines): a lot whose hold reached the WMS is never shipped; the
attempt is a ``shipment`` row with outcome ``rejected`` and reason :data:`REASON_LOT_ON_HOLD` (``t_created`` =
the attempt: at the plan, or with the quality gate when the hold arrives if later, ``twins.wms.refusal_times``;
V: ``virtual/plant.py``, L: ``live/plant_wms.py``), and the lot ships after its release. The lots table's
``t_hold`` / ``t_hold_at_wms`` mean the same in both engines: the QMS's decision, and its arrival at the
plant's WMS (hold propagation = the difference).

So ``t_acked >= t_delivered`` wherever both exist, and ``t_acked`` is the row's end for every copy the
integration layer finished.

One time semantics. Every hop time is scenario seconds in both engines, and so is every interval the
integration layer is configured with: OPC UA sampling and publishing, the edge's scan (confirmation),
flush and retry backoff (``landscape.plants[].edge``), the workers' retry backoff and breaker cooldown
and the broker's ack wait (``landscape.integration``). A live run at speed ``S`` runs each of them at
``1/S`` of its value in wall time (``live/intervals.py``; a floor of a few milliseconds wall, noted when
it applies), so a live run at any speed has the scenario's configuration in scenario time. Only
processing time is stretched: a live run at speed ``S`` carries ``S ×`` the plants' real event rate, and
each wall second a process spends working counts as ``S`` scenario seconds. The report says so.

Retries through an ERP outage follow one policy in both engines (``integration/delivery.py``): the
breaker's cooldown paces them on the grid of its opening (not each message's grown backoff, and not
the probes' stretched round trips), and the probe that closes the breaker releases every waiting
posting at once (the live worker's lanes wake on it; per-key order holds). So ``t_delivered`` of a
posting queued during an outage, and the recovery the report reads from it, mean the same in both.
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
# The plant WMS refused to ship a lot whose quality hold had reached it (live/plant_wms.py, virtual/plant.py).
REASON_LOT_ON_HOLD = "lot_on_quality_hold"

HOPS: tuple[str, ...] = ("t_created", "t_edge", "t_broker", "t_delivered", "t_acked")
ERP_QUEUE_TIMES: tuple[str, ...] = ("t_erp_arrival", "t_service_start")

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
        # Queueing at the ERP (NaN where the copy never reached an ERP, or the engine cannot see it):
        # when the delivered attempt reached the ERP, and when the ERP began serving it. So
        # t_service_start - t_erp_arrival is the wait in the ERP's queue, t_delivered - t_service_start
        # its service. V: the hub's ERP queues. L: the ERP twin's ledger (live/erp_service.py), joined by
        # live/collect.py; a batch's postings share their request's arrival and service start.
        pa.field("t_erp_arrival", pa.float64()),
        pa.field("t_service_start", pa.float64()),
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
