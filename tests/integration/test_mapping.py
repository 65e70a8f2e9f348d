"""Plant codes and units to the canonical model; unmappable records carry the reason, never vanish."""

from __future__ import annotations

import math

import pytest

from integration.mapping import Mapped, PlantMapping, Unmappable
from kernel.trace import REASON_UNKNOWN_UNIT, REASON_UNMAPPED_ITEM
from scenarios.spec import ItemSpec, PlantSpec

MASTER = {"FG-100": ItemSpec(unit="EA"), "RM-10": ItemSpec(unit="KG")}


def _mapping(**mapping) -> PlantMapping:
    plant = PlantSpec(id="MTY", products=["LOC-A"], unit="PCS", mapping=mapping)
    return PlantMapping.from_spec(plant, MASTER)


def test_canonical_codes_and_units_map_to_themselves():
    m = _mapping()
    assert m.map_one("FG-100", 5.0, "EA") == Mapped("FG-100", 5.0, "EA")
    assert m.map_one("RM-10", 2.5, "KG") == Mapped("RM-10", 2.5, "KG")


def test_local_item_and_unit_with_conversion_factor():
    m = _mapping(items={"LOC-A": "FG-100", "LOC-R": "RM-10"},
                 units={"PCS": {"to": "EA"}, "LB": {"to": "KG", "factor": 0.45359237}})
    assert m.map_one("LOC-A", 12.0, "PCS") == Mapped("FG-100", 12.0, "EA")
    result = m.map_one("LOC-R", 10.0, "LB")
    assert isinstance(result, Mapped)
    assert (result.item, result.unit) == ("RM-10", "KG")
    assert result.qty == pytest.approx(4.5359237)


def test_unmapped_item_is_reported_with_its_code():
    result = _mapping().map_one("LOC-Z", 1.0, "EA")
    assert isinstance(result, Unmappable)
    assert result.reason == REASON_UNMAPPED_ITEM
    assert "'LOC-Z'" in result.detail and "MTY" in result.detail


def test_item_mapped_to_a_code_missing_from_master_is_unmapped():
    result = _mapping(items={"LOC-A": "FG-999"}).map_one("LOC-A", 1.0, "EA")
    assert isinstance(result, Unmappable) and result.reason == REASON_UNMAPPED_ITEM


def test_unit_without_mapping_is_unknown_unit():
    result = _mapping(items={"LOC-A": "FG-100"}).map_one("LOC-A", 1.0, "BOX")
    assert isinstance(result, Unmappable)
    assert result.reason == REASON_UNKNOWN_UNIT
    assert "'BOX'" in result.detail and "EA" in result.detail


def test_unit_of_the_wrong_dimension_is_unknown_unit():
    # KG is a known unit, but FG-100 is counted in EA: no silent conversion.
    result = _mapping().map_one("FG-100", 3.0, "KG")
    assert isinstance(result, Unmappable) and result.reason == REASON_UNKNOWN_UNIT
    result = _mapping(units={"LB": {"to": "KG", "factor": 0.45}}).map_one("FG-100", 3.0, "LB")
    assert isinstance(result, Unmappable) and result.reason == REASON_UNKNOWN_UNIT


def test_vector_form_over_a_product_list():
    m = _mapping(items={"LOC-A": "FG-100"}, units={"PCS": {"to": "EA", "factor": 2.0}})
    codes, factors, reasons = m.map_codes(["LOC-A", "LOC-Z", "FG-100"], "PCS")
    assert codes == ["FG-100", "LOC-Z", "FG-100"]
    assert factors[0] == 2.0 and math.isnan(factors[1]) and factors[2] == 2.0
    assert reasons == ["", REASON_UNMAPPED_ITEM, ""]
