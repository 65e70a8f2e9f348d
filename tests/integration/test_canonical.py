"""Versioned plant payloads to the canonical event; unknown fields are refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from integration.canonical import CanonicalEvent, PayloadV1, PayloadV2, to_canonical


def test_v1_payload_maps_field_by_field():
    payload = PayloadV1(id="P01-7", type="goods_receipt", material="LOC-A", quantity=150, uom="PCS",
                        line="L01", lot="P01-L01-000003", timestamp=3600.5)
    event = to_canonical(payload, "P01")
    assert event == CanonicalEvent(
        txn_id="P01-7", correlation_id="P01-L01-000003", flow="goods_receipt", plant="P01", line="L01",
        source="MES", target="ERP", item="LOC-A", lot="P01-L01-000003", qty=150.0, unit="PCS",
        schema_version="v1", t_created=3600.5,
    )


def test_v1_without_lot_correlates_by_its_own_id():
    event = to_canonical(PayloadV1(id="x1", type="scrap", material="FG-100", quantity=2, uom="EA",
                                   timestamp=0), "P02")
    assert event.correlation_id == "x1" and event.lot == ""


def test_v2_payload_keeps_canonical_fields_and_takes_the_plant_from_the_caller():
    payload = PayloadV2(txn_id="t-1", flow="shipment", item="FG-100", qty=10, unit="EA", source="WMS",
                        t_created=12.0, correlation_id="c-9")
    event = to_canonical(payload, "P03")
    assert (event.plant, event.source, event.flow, event.schema_version) == ("P03", "WMS", "shipment", "v2")
    assert event.correlation_id == "c-9" and event.txn_id == "t-1" and event.qty == 10.0
    assert to_canonical(PayloadV2(txn_id="t-2", flow="scrap", item="I", qty=1, unit="EA", t_created=0),
                        "P").correlation_id == "t-2"


@pytest.mark.parametrize("model", [PayloadV1, PayloadV2, CanonicalEvent])
def test_extra_fields_are_rejected(model):
    good = {
        PayloadV1: dict(id="a", type="scrap", material="m", quantity=1, uom="EA", timestamp=0),
        PayloadV2: dict(txn_id="a", flow="scrap", item="m", qty=1, unit="EA", t_created=0),
        CanonicalEvent: dict(txn_id="a", flow="scrap", plant="P", item="m", qty=1, unit="EA", t_created=0),
    }[model]
    model(**good)
    with pytest.raises(ValidationError) as info:
        model(**good, colour="blue")
    assert info.value.errors()[0]["type"] == "extra_forbidden"
    assert info.value.errors()[0]["loc"] == ("colour",)


def test_v2_refuses_a_plant_in_the_body():
    with pytest.raises(ValidationError):
        PayloadV2(txn_id="a", flow="scrap", item="m", qty=1, unit="EA", t_created=0, plant="P02")


@pytest.mark.parametrize(
    ("field", "value"),
    [("flow", "teleportation"), ("qty", -1), ("txn_id", ""), ("t_created", -5), ("txn_id", "x" * 129)],
)
def test_bad_values_are_rejected_naming_the_field(field, value):
    body = dict(txn_id="a", flow="scrap", item="m", qty=1, unit="EA", t_created=0) | {field: value}
    with pytest.raises(ValidationError) as info:
        PayloadV2(**body)
    assert info.value.errors()[0]["loc"] == (field,)
