"""Binding by the mapping profile, on address-space trees built in memory (no server needed)."""

from __future__ import annotations

import asyncio

import yaml
from asyncua import ua

from onboarding.browse import OBJECT, VARIABLE, Item
from onboarding.checks.opcua import check_connectivity, check_endpoint_security
from onboarding.discover import find_machines
from onboarding.profile import DEFAULT_PROFILE, Profile, load_profile
from onboarding.verdict import FAIL
from tests.onboarding.plants import plant

_ids = iter(range(1000, 100_000))


def var(name: str, datatype: str = "UInt32", rank: int = -1) -> Item:
    return Item(ua.NodeId(next(_ids), 2), name, VARIABLE, datatype=datatype, value_rank=rank)


def obj(name: str, *children: Item, type_name: str = "") -> Item:
    item = Item(ua.NodeId(next(_ids), 2), name, OBJECT, type_name=type_name, children=list(children))
    _paths(item, ())
    return item


def _paths(item: Item, parent: tuple[str, ...]) -> None:
    item.path = (*parent, item.name)
    for child in item.children:
        _paths(child, item.path)


def german_press() -> Item:
    press = obj("Presse_1", var("Zustand", "String"), var("Gutteile"), var("Ausschuss"), var("Temperatur", "Double"))
    return obj("Objects", obj("Halle_3", press))


def test_vendor_names_bind_only_with_an_edited_profile(tmp_path):
    assert find_machines(german_press(), load_profile()) == []  # the default profile knows none of the names
    data = yaml.safe_load(DEFAULT_PROFILE.read_text())
    data["signals"]["state"].append("Zustand")
    data["signals"]["good"].append("Gutteile")
    data["signals"]["scrap"].append("Ausschuss")
    edited = tmp_path / "profile.yaml"
    edited.write_text(yaml.safe_dump(data))
    [found] = find_machines(german_press(), load_profile(edited))
    assert found.structure == "folder" and found.line == "Halle_3"
    assert {s: v.name for s, v in found.signals.items()} == {"state": "Zustand", "good": "Gutteile",
                                                             "scrap": "Ausschuss"}
    assert {u.signal for u in found.unbound} == {"cycle_time", "speed", "temperature", "alarm"}


def test_a_counter_of_the_wrong_type_is_refused_with_its_reason():
    machine = obj("M1", var("State", "String"), var("GoodCount", "String"), var("Good", "UInt64"),
                  var("ScrapCount", "Double", rank=1))
    [found] = find_machines(obj("Objects", machine), load_profile())
    assert found.signals["good"].name == "Good"  # GoodCount is text: the next usable match binds
    scrap = next(u for u in found.unbound if u.signal == "scrap")
    assert "ScrapCount is an array" in scrap.reason


def test_a_profile_with_a_broken_pattern_or_unknown_signal_is_refused():
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not a regular expression"):
        Profile.model_validate({"signals": {"good": ["(unclosed"]}})
    with pytest.raises(ValidationError, match="unknown signal"):
        Profile.model_validate({"signals": {"humidity": ["Hum"]}})


def test_an_unreachable_endpoint_fails_security_and_connectivity_with_fixes(tmp_path):
    from kernel.net import free_port

    port = free_port()  # nothing listens there
    gone = plant(endpoint={"url": f"opc.tcp://127.0.0.1:{port}"})
    security = asyncio.run(check_endpoint_security(gone))
    assert security[0].verdict == FAIL and "reachable" in security[0].fix
    rows = {r.name: r for r in asyncio.run(check_connectivity(gone, load_profile(), tmp_path))}
    assert rows["OPC UA login"].verdict == FAIL and "firewall" in rows["OPC UA login"].fix
