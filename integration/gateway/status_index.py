"""Where an accepted event sits in the EVENTS stream, looked up by its id in milliseconds: a JetStream KV bucket.

Every event the gateway stores gets an entry ``<plant>.<txn key>`` in the bucket ``EVENT_INDEX`` holding its
stream sequence, flow and correlation id. A status read is then one KV get (JetStream's direct get of the
last message on that subject), whatever the stream's length, after a gateway restart too and across
uvicorn workers. The entries are sent in one buffer right after the events' PubAcks (the sequence is known
only then), without PubAcks of their own, followed by one PING/PONG: once the PONG is in, the broker holds
them, so a gateway killed after its 202 loses no entry. Per-entry PubAcks cost 1.6–1.8 times the request
time of a 1,000-event batch, this 1.3–1.5 times (``bench/bench_status.py``). An entry lost because the
broker itself died before storing it makes the id answer 404 until the client posts it again, which
re-indexes it (a duplicate is indexed like a first copy).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from integration.gateway.ingest import Message

BUCKET = "EVENT_INDEX"
_PLAIN = re.compile(r"[-_A-Za-z0-9]{1,200}")


@dataclass(frozen=True, slots=True)
class Stored:
    """Where an accepted event sits in the EVENTS stream."""

    plant: str
    seq: int
    flow: str
    correlation_id: str


def _token(text: str) -> str:
    """``text`` as one KV key token: itself if plain, else ``=`` + unpadded base64url (never plain: ``=``)."""
    if _PLAIN.fullmatch(text):
        return text
    return "=" + base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def index_key(plant: str, txn_id: str) -> str:
    """The KV key of ``txn_id`` posted by ``plant``."""
    return f"{_token(plant)}.{_token(txn_id)}"


def encode(stored: Stored) -> bytes:
    """An entry's value: ``seq``, flow and correlation id on three lines."""
    return f"{stored.seq}\n{stored.flow}\n{stored.correlation_id}".encode()


def decode(plant: str, value: bytes) -> Stored:
    """The :class:`Stored` of an entry value."""
    seq, flow, correlation = (value.decode().split("\n", 2) + ["", ""])[:3]
    return Stored(plant, int(seq), flow, correlation)


def entries(plant: str, messages: list[Message], seqs: list[int]) -> list[Message]:
    """Index entries for ``messages`` stored at ``seqs``, publishable like events (``$KV.<bucket>.<key>``).

    Each entry's broker key is ``<txn_id>@<seq>``, so re-indexing the same copy is dropped as a duplicate
    while a replayed copy (a new sequence) overwrites the entry.
    """
    out = []
    for m, seq in zip(messages, seqs, strict=True):
        flow = m.subject.rsplit(".", 1)[1]
        value = encode(Stored(plant, seq, flow, m.correlation_id))
        out.append(Message(f"$KV.{BUCKET}.{index_key(plant, m.txn_id)}", f"{m.txn_id}@{seq}", m.correlation_id,
                           value))
    return out


async def open_bucket(js: Any, replicas: int = 1) -> Any:
    """The index bucket (created on first use: file storage, one value per key; ``replicas`` copies on a
    cluster, where the broker creates it before any gateway starts)."""
    from nats.js.api import KeyValueConfig, StorageType
    from nats.js.errors import BadRequestError, BucketNotFoundError

    try:
        return await js.key_value(BUCKET)
    except BucketNotFoundError:
        pass
    try:
        config = KeyValueConfig(bucket=BUCKET, history=1, storage=StorageType.FILE, replicas=replicas)
        return await js.create_key_value(config)
    except BadRequestError:  # another gateway process created it first
        return await js.key_value(BUCKET)


async def lookup(kv: Any, plant: str, txn_id: str) -> Stored | None:
    """The index entry of ``txn_id`` of ``plant``, or None if the gateway never stored it."""
    from nats.js.errors import KeyNotFoundError

    try:
        entry = await kv.get(index_key(plant, txn_id), validate_keys=False)
    except KeyNotFoundError:
        return None
    return decode(plant, entry.value) if entry.value else None
