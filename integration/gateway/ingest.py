"""Request bodies to broker messages: validation with field-naming errors and the canonical JSON.

This is the hot path of the gateway, so it validates a whole body with one TypeAdapter call and
builds each canonical message as a dict serialised by pydantic-core (no second model validation);
``tests/integration/test_gateway_ingest.py`` pins it to :func:`integration.canonical.to_canonical`.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, NamedTuple

import pydantic_core
from pydantic import Field, TypeAdapter, ValidationError

from integration.broker import subject_token
from integration.canonical import PayloadV1, PayloadV2

# A list body holds at least one event (the OpenAPI document says minItems 1; it is built from these types).
BATCHES: dict[str, Any] = {
    "v1": Annotated[list[PayloadV1], Field(min_length=1)], "v2": Annotated[list[PayloadV2], Field(min_length=1)],
}
# A body is one object or a list; picking the adapter by the first byte avoids trying both branches.
ADAPTERS: dict[tuple[str, bool], TypeAdapter[Any]] = {
    ("v1", False): TypeAdapter(PayloadV1), ("v1", True): TypeAdapter(BATCHES["v1"]),
    ("v2", False): TypeAdapter(PayloadV2), ("v2", True): TypeAdapter(BATCHES["v2"]),
}
# How to fix what pydantic-core reports, by its error type.
FIXES = {
    "finite_number": "must be a finite JSON number; NaN, Infinity and numbers beyond ±1.7e308 are refused",
    "float_type": "must be a JSON number, not a string or a boolean",
    "too_short": "empty list; send at least one event",
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
    message = FIXES.get(error["type"], error["msg"])
    if error["type"] == "too_short" and not error["loc"]:
        return {"field": field, "message": message}
    return {"field": field, "message": message, "found": json_safe(error.get("input"))}


def json_safe(found: Any) -> Any:
    """``found`` as a JSON-encodable value: non-finite floats as text (``"NaN"``, ``"Infinity"``),
    containers by their type name."""
    if isinstance(found, float) and not math.isfinite(found):
        return "NaN" if math.isnan(found) else ("Infinity" if found > 0 else "-Infinity")
    return found if isinstance(found, str | int | float | bool) or found is None else type(found).__name__


def json_safe_errors(errors: Any) -> list[dict[str, Any]]:
    """pydantic errors with each ``input`` made JSON-encodable and ``ctx`` values as text."""
    out = []
    for e in errors:
        e = {k: v for k, v in e.items() if k not in ("ctx", "url")}
        if "input" in e:
            e["input"] = json_safe(e["input"])
        out.append(e)
    return out


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
    return parsed if isinstance(parsed, list) else [parsed]


def to_messages(payloads: list[PayloadV1] | list[PayloadV2], plant: str, shift: float = 0.0,
                after: float = math.inf) -> list[Message]:
    """Broker messages for validated payloads posted by ``plant`` (canonical JSON bodies); ``shift`` is added
    to each ``t_created`` later than ``after`` (a creation time in the future from a plant whose clock is
    ahead, :mod:`integration.gateway.sources`)."""
    out: list[Message] = []
    to_json = pydantic_core.to_json
    for p in payloads:
        d = p.__dict__
        if isinstance(p, PayloadV2):
            txn, corr, flow = d["txn_id"], d["correlation_id"] or d["txn_id"], d["flow"]
            event = {
                "txn_id": txn, "correlation_id": corr, "flow": flow, "plant": plant, "line": d["line"],
                "source": d["source"], "target": d["target"], "item": d["item"], "lot": d["lot"],
                "qty": d["qty"], "unit": d["unit"], "schema_version": "v2",
                "t_created": d["t_created"] + shift if d["t_created"] > after else d["t_created"],
            }
        else:
            txn, corr, flow = d["id"], d["lot"] or d["id"], d["type"]
            event = {
                "txn_id": txn, "correlation_id": corr, "flow": flow, "plant": plant, "line": d["line"],
                "source": "MES", "target": "ERP", "item": d["material"], "lot": d["lot"],
                "qty": d["quantity"], "unit": d["uom"], "schema_version": "v1",
                "t_created": d["timestamp"] + shift if d["timestamp"] > after else d["timestamp"],
            }
        out.append(Message(f"events.{plant}.{flow}.{subject_token(txn)}", txn, corr, to_json(event)))  # event_subject
    return out
