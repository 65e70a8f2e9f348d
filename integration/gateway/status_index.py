"""Where an accepted event sits in the EVENTS stream, looked up by its id in milliseconds: by its subject.

Every event is stored on ``events.<plant>.<flow>.<id token>`` (:func:`integration.broker.event_subject`), so a
status read is one JetStream look-up of the last message on ``events.<plant>.*.<id token>`` (the stream keeps
a per-subject index), whatever the stream's length, after a gateway restart too and across uvicorn workers.
The event itself answers: its sequence, flow, correlation id and broker time. Nothing is written besides the
event, so what a PubAck covers is all a status read needs (an id answers as soon as its 202 is sent), and the
broker stores one message per event. A replayed copy is published on the same subject and becomes the last.

An earlier design kept an ``EVENT_INDEX`` KV entry per event: a second message per event for the gateway to
build and the broker to store, about a quarter of the chain's CPU per event (``bench/RESULTS.md``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from integration.broker import EVENTS_STREAM, HEADER_CORRELATION, subject_token


@dataclass(frozen=True, slots=True)
class Stored:
    """Where an accepted event sits in the EVENTS stream, and when the broker stored it (epoch seconds)."""

    plant: str
    seq: int
    flow: str
    correlation_id: str
    time: float | None = None


def lookup_subject(plant: str, txn_id: str) -> str:
    """The subject filter matching every stored copy of ``txn_id`` posted by ``plant`` (any flow)."""
    return f"events.{plant}.*.{subject_token(txn_id)}"


def stored_of(plant: str, msg: Any) -> Stored:
    """The :class:`Stored` of a stream message (nats-py's ``RawStreamMsg``)."""
    parts = msg.subject.split(".")
    flow = parts[2] if len(parts) > 2 else ""
    correlation = (msg.headers or {}).get(HEADER_CORRELATION)
    if correlation is None:
        try:
            correlation = str(json.loads(msg.data).get("correlation_id", ""))
        except (ValueError, AttributeError):
            correlation = ""
    when = getattr(msg, "time", None)
    return Stored(plant, int(msg.seq), flow, correlation, when.timestamp() if when is not None else None)


async def lookup(js: Any, plant: str, txn_id: str) -> Stored | None:
    """The last stored copy of ``txn_id`` of ``plant``, or None if the gateway never stored it."""
    from nats.js.errors import NotFoundError

    try:
        msg = await js.get_last_msg(EVENTS_STREAM, lookup_subject(plant, txn_id))
    except NotFoundError:
        return None
    return stored_of(plant, msg)
