"""Contract and segmentation rows against a real embedded gateway (broker and gateway processes)."""

from __future__ import annotations

import pytest

from onboarding.checks.contract import GatewayTarget, check_contract, check_gateway_security, plant_flows
from onboarding.services import Embedded
from tests.onboarding.plants import plant

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with Embedded(tmp_path_factory.mktemp("gateway"), ["P01", "LNZ"]) as embedded:
        yield GatewayTarget(embedded.start_gateway(), embedded.key("LNZ"), "P01")


@pytest.mark.parametrize("version, field", [("v1", "material"), ("v2", "item")])
def test_samples_of_every_flow_are_accepted_and_broken_ones_name_their_field(gateway, version, field):
    subject = plant(schema_version=version)
    rows, stored = check_contract(subject, gateway)
    samples = [r for r in rows if r.name.endswith("sample")]
    assert len(samples) == len(plant_flows(subject)) == 4  # confirmation, goods receipt, scrap, downtime
    assert all(r.verdict == "pass" and "answered 202" in r.evidence for r in samples), samples
    broken = [r for r in rows if "invalid" in r.name]
    assert len(broken) == 2 and all(r.verdict == "pass" and "422" in r.evidence for r in broken), broken
    assert f"body.{field}" in broken[0].evidence
    security = check_gateway_security(subject, gateway, stored)
    assert {r.name: r.verdict for r in security} == {
        "key reads LNZ's own data": "pass", "unknown key refused": "pass", "cannot post as P01": "pass",
        "cannot post v1 as P01": "pass", "cannot read P01's data": "pass"}


def test_a_key_of_another_plant_fails_the_own_data_row(gateway):
    """Evidence that the rows can fail: LNZ's plant file used with P01's idea of itself."""
    rows, stored = check_contract(plant(), gateway)
    wrong = check_gateway_security(plant(plant={"id": "P01"}), gateway, stored)
    assert {r.name: r.verdict for r in wrong}["key reads P01's own data"] == "fail"
