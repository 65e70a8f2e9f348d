"""Toxics of the fault proxy, named and parameterised as Toxiproxy names them.

A toxic acts on one direction of a link: ``upstream`` (client → service) or ``downstream``
(service → client), on a share ``toxicity`` of the connections (drawn once per connection). Units
are Toxiproxy's: milliseconds for ``latency``, ``jitter``, ``timeout`` and ``delay`` (slow_close);
KB/s (1 KB = 1000 bytes) for ``rate``; microseconds for the slicer's ``delay``; bytes for sizes.

| type | attributes | effect |
|---|---|---|
| latency | latency, jitter | every chunk is held latency ± jitter ms (order kept) |
| bandwidth | rate | at most rate KB/s |
| slow_close | delay | the close is held delay ms |
| timeout | timeout | no data passes; the connection is closed after timeout ms (0: held until removed) |
| reset_peer | timeout | the connection is reset (RST) after timeout ms (0: at once) |
| slicer | average_size, size_variation, delay | slices of average_size ± size_variation bytes, delay µs apart |
| limit_data | bytes | the connection is closed once that many bytes passed |

``down`` is not a toxic in Toxiproxy but the proxy's ``enabled: false``; the proxy here keeps its
port and resets every connection while disabled (see :mod:`live.faultproxy`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STREAMS = ("upstream", "downstream")

# type -> {attribute: default}
TOXIC_TYPES: dict[str, dict[str, float]] = {
    "latency": {"latency": 0.0, "jitter": 0.0},
    "bandwidth": {"rate": 0.0},
    "slow_close": {"delay": 0.0},
    "timeout": {"timeout": 0.0},
    "reset_peer": {"timeout": 0.0},
    "slicer": {"average_size": 0.0, "size_variation": 0.0, "delay": 0.0},
    "limit_data": {"bytes": 0.0},
}


class ToxicError(ValueError):
    """A toxic definition that cannot be applied; the message names the field and what is allowed."""


@dataclass
class Toxic:
    """One toxic on a proxy (Toxiproxy's JSON shape via :meth:`as_json`)."""

    name: str
    type: str
    stream: str = "downstream"
    toxicity: float = 1.0
    attributes: dict[str, float] = field(default_factory=dict)
    added: float = field(default=0.0, compare=False)  # loop time it was added (timeouts count from here)

    def attr(self, key: str) -> float:
        return float(self.attributes.get(key, TOXIC_TYPES[self.type][key]))

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "stream": self.stream, "toxicity": self.toxicity,
                "attributes": dict(self.attributes)}


def parse_toxic(body: dict[str, Any]) -> Toxic:
    """A :class:`Toxic` from Toxiproxy's JSON (``type``, ``stream``, ``toxicity``, ``attributes``, ``name``)."""
    if not isinstance(body, dict):
        raise ToxicError("a toxic is a JSON object with type, stream, toxicity and attributes")
    unknown = set(body) - {"name", "type", "stream", "toxicity", "attributes"}
    if unknown:
        raise ToxicError(f"unknown field(s) {sorted(unknown)}; allowed: name, type, stream, toxicity, attributes")
    kind = body.get("type")
    if kind not in TOXIC_TYPES:
        raise ToxicError(f"type: {kind!r} is not a toxic; use one of {', '.join(TOXIC_TYPES)} "
                         "(a link down is the proxy's enabled: false)")
    stream = body.get("stream", "downstream")
    if stream not in STREAMS:
        raise ToxicError(f"stream: {stream!r}; use upstream (client to service) or downstream")
    try:
        toxicity = float(body.get("toxicity", 1.0))
    except (TypeError, ValueError):
        raise ToxicError(f"toxicity: {body.get('toxicity')!r} is not a number between 0 and 1") from None
    if not 0.0 <= toxicity <= 1.0:
        raise ToxicError(f"toxicity: {toxicity} is outside 0..1")
    attributes = check_attributes(kind, body.get("attributes") or {})
    name = body.get("name") or f"{kind}_{stream}"
    if not isinstance(name, str):
        raise ToxicError("name: a toxic's name is a string")
    return Toxic(name, kind, stream, toxicity, attributes)


def check_attributes(kind: str, attributes: dict[str, Any]) -> dict[str, float]:
    """Attributes of a toxic of type ``kind`` as numbers >= 0; unknown ones are errors."""
    if not isinstance(attributes, dict):
        raise ToxicError("attributes: a JSON object of numbers")
    allowed = TOXIC_TYPES[kind]
    out: dict[str, float] = {}
    for key, value in attributes.items():
        if key not in allowed:
            raise ToxicError(f"attributes.{key}: not an attribute of {kind}; allowed: {', '.join(allowed)}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ToxicError(f"attributes.{key}: {value!r} is not a number") from None
        if number < 0:
            raise ToxicError(f"attributes.{key}: {number} is negative")
        out[key] = number
    if kind == "bandwidth" and out.get("rate", 0.0) <= 0:
        raise ToxicError("attributes.rate: bandwidth needs a rate > 0 KB/s")
    if kind == "slicer" and out.get("average_size", 0.0) < 1:
        raise ToxicError("attributes.average_size: slicer needs an average_size >= 1 byte")
    return out
