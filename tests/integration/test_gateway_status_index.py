"""Status index keys: every txn id (dots, wildcards, spaces, any Unicode) maps to a valid KV key, never two to one."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from integration.gateway.ingest import Message
from integration.gateway.status_index import Stored, decode, encode, entries, index_key

KV_KEY = re.compile(r"^[-/_=\.a-zA-Z0-9]+$")  # nats-py's key check
ids = st.text(min_size=1, max_size=128)


@given(ids, ids)
def test_keys_are_valid_and_distinct(a, b):
    for txn in (a, b):
        key = index_key("P01", txn)
        assert KV_KEY.match(key) and not key.startswith(".") and ".." not in key and not key.endswith(".")
        assert key.count(".") == 1  # one token for the plant, one for the id
    assert (index_key("P01", a) == index_key("P01", b)) == (a == b)


def test_plain_ids_stay_readable_and_encoded_ones_cannot_collide_with_them():
    assert index_key("P01", "OC-17_a") == "P01.OC-17_a"
    assert index_key("P01", "a.b").startswith("P01.=")
    assert index_key("P01", "=YS5i") != index_key("P01", "a.b")


@given(st.integers(min_value=1, max_value=2**63), st.sampled_from(["scrap", "backflush"]), st.text(max_size=128))
def test_entry_values_round_trip(seq, flow, correlation):
    stored = Stored("P01", seq, flow, correlation)
    assert decode("P01", encode(stored)) == stored


def test_entries_are_kv_messages_keyed_by_id_and_sequence():
    msgs = [Message("events.P01.scrap", "t.1", "c-1", b"{}"), Message("events.P01.backflush", "t2", "c-2", b"{}")]
    out = entries("P01", msgs, [41, 42])
    assert [m.subject for m in out] == [f"$KV.EVENT_INDEX.{index_key('P01', 't.1')}", "$KV.EVENT_INDEX.P01.t2"]
    assert [m.txn_id for m in out] == ["t.1@41", "t2@42"]
    assert decode("P01", out[1].body) == Stored("P01", 42, "backflush", "c-2")
