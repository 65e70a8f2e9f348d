"""Status look-ups by subject: every txn id (dots, wildcards, spaces, any Unicode) maps to one valid subject
token, never two ids to one; a stored copy is read back from its subject, a replayed copy wins."""

from __future__ import annotations

import asyncio
import contextlib
import re

import nats
from hypothesis import given
from hypothesis import strategies as st

from integration.broker import EVENTS_STREAM, event_headers, event_subject, subject_token
from integration.gateway.status_index import Stored, lookup, lookup_subject

TOKEN = re.compile(r"^[^.*>\s]+$")  # one NATS subject token: no dot, no wildcard, no whitespace
ids = st.text(min_size=1, max_size=128)


@given(ids, ids)
def test_tokens_are_valid_and_distinct(a, b):
    for txn in (a, b):
        assert TOKEN.match(subject_token(txn))
        assert event_subject("P01", "scrap", txn).count(".") == 3
    assert (subject_token(a) == subject_token(b)) == (a == b)


def test_plain_ids_stay_readable_and_encoded_ones_cannot_collide_with_them():
    assert subject_token("OC-17_a") == "OC-17_a"
    assert subject_token("a.b").startswith("=")
    assert subject_token("=YS5i") != subject_token("a.b")
    assert lookup_subject("P01", "a b") == f"events.P01.*.{subject_token('a b')}"


def test_lookup_finds_the_last_copy_on_the_ids_subject(broker):
    async def main() -> tuple[Stored | None, Stored | None, int]:
        nc = await nats.connect(broker.url)
        js = nc.jetstream()
        with contextlib.suppress(nats.js.errors.BadRequestError):  # the module's broker may have it already
            await js.add_stream(name=EVENTS_STREAM, subjects=["events.>"])
        for n, txn in enumerate(("lk.1", "lk.2", "lk.1")):  # the third is a later copy (e.g. a replay)
            ack = await js.publish(event_subject("P03", "scrap", txn), b"{}",
                                   headers=event_headers(f"{txn}:{n}", f"c-{txn}"))
        found, missing = await lookup(js, "P03", "lk.1"), await lookup(js, "P03", "lk.404")
        await nc.close()
        return found, missing, ack.seq

    found, missing, last_seq = asyncio.run(main())
    assert missing is None
    assert found is not None and (found.plant, found.seq, found.flow, found.correlation_id) == (
        "P03", last_seq, "scrap", "c-lk.1")
    assert found.time is not None and found.time > 0
