"""Canonical business events and the versioned plant payloads that map onto them.

``v1`` is the legacy plant format (``material``/``quantity``/``uom``); ``v2`` is canonical field for
field. Both coexist on the gateway; :func:`to_canonical` turns either into a :class:`CanonicalEvent`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AllowInfNan, BaseModel, ConfigDict, Field, Strict

from kernel.trace import FLOWS

Flow = Literal[FLOWS]  # type: ignore[valid-type]
# A JSON number: no booleans or numeric strings, never NaN or ±Infinity (``1e400`` parses as Infinity).
Number = Annotated[float, Strict(), AllowInfNan(False)]


class CanonicalEvent(BaseModel):
    """One business transaction in the enterprise's model. ``txn_id`` is its idempotency key."""

    model_config = ConfigDict(extra="forbid")

    txn_id: str = Field(min_length=1, max_length=128)
    correlation_id: str = Field("", max_length=128)
    flow: Flow
    plant: str = Field(min_length=1)
    line: str = ""
    source: str = "MES"
    target: str = "ERP"
    item: str = Field(min_length=1)
    lot: str = ""
    qty: Number = Field(ge=0)
    unit: str = Field(min_length=1)
    schema_version: Literal["v1", "v2"] = "v2"
    t_created: Number = Field(ge=0, description="scenario seconds at the source")


class PayloadV1(BaseModel):
    """Legacy plant payload."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=128)
    type: Flow
    material: str = Field(min_length=1)
    quantity: Number = Field(ge=0)
    uom: str = Field(min_length=1)
    line: str = ""
    lot: str = ""
    timestamp: Number = Field(ge=0)


class PayloadV2(BaseModel):
    """Canonical plant payload; the plant comes from the credentials, never from the body."""

    model_config = ConfigDict(extra="forbid")

    txn_id: str = Field(min_length=1, max_length=128)
    correlation_id: str = Field("", max_length=128)
    flow: Flow
    item: str = Field(min_length=1)
    qty: Number = Field(ge=0)
    unit: str = Field(min_length=1)
    line: str = ""
    lot: str = ""
    source: str = "MES"
    target: str = "ERP"
    t_created: Number = Field(ge=0)


def to_canonical(payload: PayloadV1 | PayloadV2, plant: str) -> CanonicalEvent:
    """The canonical event for a validated payload posted by ``plant``."""
    if isinstance(payload, PayloadV1):
        return CanonicalEvent(
            txn_id=payload.id, correlation_id=payload.lot or payload.id, flow=payload.type, plant=plant,
            line=payload.line, item=payload.material, lot=payload.lot, qty=payload.quantity,
            unit=payload.uom, schema_version="v1", t_created=payload.timestamp,
        )
    return CanonicalEvent(
        txn_id=payload.txn_id, correlation_id=payload.correlation_id or payload.txn_id, flow=payload.flow,
        plant=plant, line=payload.line, source=payload.source, target=payload.target, item=payload.item,
        lot=payload.lot, qty=payload.qty, unit=payload.unit, schema_version="v2", t_created=payload.t_created,
    )
