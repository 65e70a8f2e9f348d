"""The gateway's hot path without I/O: body validation, canonical messages, token bucket, settings."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from integration.broker import event_subject
from integration.canonical import CanonicalEvent, PayloadV1, PayloadV2, to_canonical
from integration.gateway.ingest import BodyError, parse_body, to_messages
from integration.gateway.ratelimit import TokenBucket
from integration.gateway.settings import GatewaySettings, generate_credentials, load_credentials
from kernel.trace import FLOWS

V2 = {"txn_id": "t1", "flow": "scrap", "item": "FG-100", "qty": 2, "unit": "EA", "t_created": 5.0}
V1 = {"id": "a1", "type": "goods_receipt", "material": "FG-100", "quantity": 3, "uom": "EA", "timestamp": 1.5,
      "lot": "L7"}


def _fields(body: object, version: str = "v2") -> list[str]:
    with pytest.raises(BodyError) as err:
        parse_body(json.dumps(body).encode(), version)
    return [e["field"] for e in err.value.errors]


def test_single_and_list_bodies_parse():
    assert len(parse_body(json.dumps(V2).encode(), "v2")) == 1
    assert len(parse_body(json.dumps([V2, {**V2, "txn_id": "t2"}]).encode(), "v2")) == 2
    assert isinstance(parse_body(json.dumps([V1]).encode(), "v1")[0], PayloadV1)


def test_errors_name_the_field():
    assert _fields({**V2, "qty": -1}) == ["body.qty"]
    assert _fields([V2, {**V2, "flow": "nope"}]) == ["body[1].flow"]
    assert _fields([V2, {k: v for k, v in V2.items() if k != "item"}]) == ["body[1].item"]
    assert _fields({**V2, "plant": "P02"}) == ["body.plant"]
    assert _fields({**V1, "quantity": "many"}, "v1") == ["body.quantity"]
    assert _fields(V1, "v2")[:1] in (["body.txn_id"], ["body.id"], ["body.flow"])


def test_unknown_plant_field_explains_where_the_plant_comes_from():
    with pytest.raises(BodyError, match="X-Api-Key"):
        parse_body(json.dumps({**V2, "plant": "P02"}).encode(), "v2")


@pytest.mark.parametrize("body", [b"", b"[]", b"{not json", b"42"])
def test_bad_bodies_are_errors(body):
    with pytest.raises(BodyError) as err:
        parse_body(body, "v2")
    assert err.value.errors and all(e["field"].startswith("body") for e in err.value.errors)


payload_v2 = st.builds(
    PayloadV2, txn_id=st.text(min_size=1, max_size=20), correlation_id=st.text(max_size=5),
    flow=st.sampled_from(FLOWS), item=st.text(min_size=1, max_size=8),
    qty=st.floats(min_value=0, max_value=1e9, allow_nan=False), unit=st.sampled_from(["EA", "KG"]),
    line=st.text(max_size=4), lot=st.text(max_size=4), t_created=st.floats(min_value=0, max_value=1e7),
)
payload_v1 = st.builds(
    PayloadV1, id=st.text(min_size=1, max_size=20), type=st.sampled_from(FLOWS),
    material=st.text(min_size=1, max_size=8), quantity=st.floats(min_value=0, max_value=1e9),
    uom=st.sampled_from(["EA", "KG"]), line=st.text(max_size=4), lot=st.text(max_size=4),
    timestamp=st.floats(min_value=0, max_value=1e7),
)


@given(st.lists(st.one_of(payload_v1, payload_v2), min_size=1, max_size=5))
def test_messages_carry_exactly_the_canonical_event(payloads):
    for payload, message in zip(payloads, to_messages(payloads, "P07"), strict=True):
        expected = to_canonical(payload, "P07")
        assert CanonicalEvent.model_validate_json(message.body) == expected
        assert message.subject == event_subject("P07", expected.flow, expected.txn_id)
        assert (message.txn_id, message.correlation_id) == (expected.txn_id, expected.correlation_id)


def test_token_bucket_limits_and_refills():
    bucket = TokenBucket(rate=10, capacity=20)
    assert bucket.take(20, now=0.0) == 0
    assert bucket.take(5, now=0.0) == pytest.approx(0.5)
    assert bucket.take(5, now=0.5) == 0  # refilled 5 tokens
    assert bucket.take(21, now=100.0) == math.inf
    with pytest.raises(ValueError):
        TokenBucket(rate=0, capacity=1)


def test_settings_read_credentials_and_rates(tmp_path):
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps({**generate_credentials(["P01", "P02"]), "opcua": {"user": "u"}}))
    settings = GatewaySettings(credentials_file=path, rate_limit="30/min")
    assert set(settings.plant_keys) == {"P01", "P02"} and settings.admin_key
    assert settings.rate_limit == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("content", "field"),
    [(None, "does not exist"), ("{", "not JSON"), ('{"plants": []}', "needs")],
)
def test_bad_credentials_files_are_explained(tmp_path, content, field):
    path = tmp_path / "c.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=field):
        load_credentials(path)


def test_shared_keys_are_refused():
    with pytest.raises(ValidationError, match="plant_keys"):
        GatewaySettings(plant_keys={"P01": "k", "P02": "k"})
    with pytest.raises(ValidationError, match="rate_limit"):
        GatewaySettings(rate_limit="fast")
