"""Request bodies to broker messages: validation with field-naming errors and the canonical JSON.

This is the hot path of the gateway, so it validates a whole body with one TypeAdapter call and
builds each canonical message as a dict serialised by pydantic-core (no second model validation);
``tests/integration/test_gateway_ingest.py`` pins it to :func:`integration.canonical.to_canonical`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import pydantic_core
from pydantic import TypeAdapter, ValidationError

from integration.canonical import PayloadV1, PayloadV2

# A body is one object or a list; picking the adapter by the first byte avoids trying both branches.
ADAPTERS: dict[tuple[str, bool], TypeAdapter[Any]] = {
    ("v1", False): TypeAdapter(PayloadV1), ("v1", True): TypeAdapter(list[PayloadV1]),
    ("v2", False): TypeAdapter(PayloadV2), ("v2", True): TypeAdapter(list[PayloadV2]),
}


class BodyError(ValueError):
    """A body that cannot be ingested; ``errors`` holds one ``{"field", "message"}`` per problem."""

    def __init__(self, errors: list[dict[str, Any]]):
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


class Message(NamedTuple):
    """One event ready to publish."""

    subject: str
    txn_id: str
    correlation_id: str
    body: bytes


def _field(loc: tuple[Any, ...]) -> str:
    text = "body"
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _explain(error: dict[str, Any]) -> dict[str, Any]:
    field = _field(tuple(error["loc"]))
    if error["type"] == "extra_forbidden":
        last = str(error["loc"][-1])
        hint = " (the plant comes from the X-Api-Key header)" if last == "plant" else ""
        return {"field": field, "message": f"unknown field; remove it{hint}"}
    if error["type"] == "missing":
        return {"field": field, "message": "required but missing"}
    found = error.get("input")
    shown = found if isinstance(found, str | int | float | bool) or found is None else type(found).__name__
    return {"field": field, "message": error["msg"], "found": shown}


def parse_body(body: bytes, version: str) -> list[PayloadV1] | list[PayloadV2]:
    """Validated payloads of a request body (one object or a list); raise :class:`BodyError`."""
    if not body:
        raise BodyError([{"field": "body", "message": "empty body; send a JSON object or a list of them"}])
    batch = body.lstrip()[:1] == b"["
    try:
        parsed = ADAPTERS[version, batch].validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise BodyError([{"field": "body", "message": f"not valid JSON: {errors[0]['msg']}"}]) from None
        raise BodyError([_explain(e) for e in errors][:50]) from None
    if not isinstance(parsed, list):
        return [parsed]
    if not parsed:
        raise BodyError([{"field": "body", "message": "empty list; send at least one event"}])
    return parsed


def to_messages(payloads: list[PayloadV1] | list[PayloadV2], plant: str) -> list[Message]:
    """Broker messages for validated payloads posted by ``plant`` (canonical JSON bodies)."""
    out: list[Message] = []
    to_json = pydantic_core.to_json
    for p in payloads:
        d = p.__dict__
        if isinstance(p, PayloadV2):
            txn, corr, flow = d["txn_id"], d["correlation_id"] or d["txn_id"], d["flow"]
            event = {
                "txn_id": txn, "correlation_id": corr, "flow": flow, "plant": plant, "line": d["line"],
                "source": d["source"], "target": d["target"], "item": d["item"], "lot": d["lot"],
                "qty": d["qty"], "unit": d["unit"], "schema_version": "v2", "t_created": d["t_created"],
            }
        else:
            txn, corr, flow = d["id"], d["lot"] or d["id"], d["type"]
            event = {
                "txn_id": txn, "correlation_id": corr, "flow": flow, "plant": plant, "line": d["line"],
                "source": "MES", "target": "ERP", "item": d["material"], "lot": d["lot"],
                "qty": d["quantity"], "unit": d["uom"], "schema_version": "v1", "t_created": d["timestamp"],
            }
        out.append(Message(f"events.{plant}.{flow}", txn, corr, to_json(event)))  # broker.event_subject
    return out
