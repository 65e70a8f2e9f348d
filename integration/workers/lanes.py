"""Message copies and the lanes they queue in.

Every fetched message becomes a :class:`Copy` and goes to the lane of its business key (the lot, else
the correlation id, else the transaction id): postings of one lot reach the ERP in order while
different lots proceed in parallel, and copies of one transaction share a lane, so a copy never races
its twin past the processed-key check.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass, field

from pydantic import TypeAdapter, ValidationError

from integration.broker import broker_time
from integration.canonical import CanonicalEvent
from integration.mapping import Mapped
from kernel.clock import ScaledClock

_EVENTS = TypeAdapter(list[CanonicalEvent])


@dataclass
class Lane:
    """The copies waiting for one lane, oldest first; JetStream's ``max_ack_pending`` bounds them."""

    items: list[Copy] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False, slots=True)
class Copy:
    """One message copy in a lane; ``key`` is its transaction id (empty for an invalid event)."""

    msg: object
    event: CanonicalEvent | None
    error: str = ""
    t_broker: float = float("nan")
    held_since: float = 0.0  # event-loop time of fetch or of the last in-progress ack
    mapped: Mapped | None = None
    key: str = ""

    def __post_init__(self) -> None:
        if self.event is not None:
            self.key = self.event.txn_id


def lane_of(copy: Copy, lanes: int) -> int:
    """The lane index of ``copy``'s business key (lot, else correlation id, else transaction id)."""
    if lanes == 1:
        return 0
    event = copy.event
    key = event.lot or event.correlation_id or event.txn_id if event else ""
    return zlib.crc32(key.encode()) % lanes


def parse_copies(msgs: list, clock: ScaledClock) -> list[Copy]:
    """Validate all messages in one call; one by one only when some message is invalid.

    The joined array is trusted only when every body is one object (``{`` … ``}``) and the array has
    one element per message, so an odd body can never shift events onto other messages."""
    times = [stored_time(msg, clock) for msg in msgs]
    datas = [msg.data for msg in msgs]
    if all(d[:1] == b"{" and d[-1:] == b"}" for d in datas):
        try:
            events = _EVENTS.validate_json(b"[" + b",".join(datas) + b"]")
            if len(events) == len(msgs):
                return [Copy(m, e, t_broker=t) for m, e, t in zip(msgs, events, times, strict=True)]
        except ValidationError:
            pass
    copies = []
    for msg, t_broker in zip(msgs, times, strict=True):
        try:
            copies.append(Copy(msg, CanonicalEvent.model_validate_json(msg.data), t_broker=t_broker))
        except ValidationError as exc:
            copies.append(Copy(msg, None, error=str(exc).replace("\n", " ")[:300], t_broker=t_broker))
    return copies


def stored_time(msg, clock: ScaledClock) -> float:
    """``broker_time`` without building nats-py's metadata objects (a tenth of the worker's CPU): the
    stored timestamp is a field of the ack subject, ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.
    <cseq>.<ns>.<pending>``; other subject forms go through nats-py."""
    tokens = (msg.reply or "").split(".")
    if len(tokens) == 9 and tokens[1] == "ACK":
        return clock.to_scenario(int(tokens[7]) / 1e9)
    return broker_time(msg, clock)
