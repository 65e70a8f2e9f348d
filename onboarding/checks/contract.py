"""Contract and gateway security: sample payloads of every flow the plant will post, sent for real.

Valid samples must be answered 202; broken ones 422 with the broken field named in ``detail``. With
the plant's key it must neither post nor read as another plant (403), and an unknown key gets 401.
Sample transaction ids start with ``ONBOARD-`` so they are never mistaken for production data.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx

from kernel.trace import DOWNTIME, GOODS_RECEIPT, OPERATION_CONFIRMATION, SCRAP
from live.edge_poster import payload
from onboarding.fleet import SUPPORTED_SCHEMAS
from onboarding.plant_file import PlantFile
from onboarding.verdict import FAIL, PASS, Row

CONTRACT, SECURITY = "contract", "security"
# (what is broken, how to break a payload, field the 422 must name) per schema version
BROKEN = {
    "v1": (("material missing", lambda p: p.pop("material"), "material"),
           ("negative quantity", lambda p: p.update(quantity=-1.0), "quantity")),
    "v2": (("item missing", lambda p: p.pop("item"), "item"),
           ("negative qty", lambda p: p.update(qty=-1.0), "qty")),
}


@dataclass(frozen=True)
class GatewayTarget:
    """Where samples go: the gateway URL, the plant's key there, and another plant of that gateway."""

    url: str
    api_key: str
    other_plant: str


def plant_flows(plant: PlantFile) -> list[str]:
    """Flows the plant's edge will post, from what its machines provide."""
    bound = {s for m in plant.machines for s in m.signals}
    flows = [OPERATION_CONFIRMATION, GOODS_RECEIPT] if "good" in bound else []
    flows += [SCRAP] if "scrap" in bound else []
    flows += [DOWNTIME] if "state" in bound else []
    return flows


def sample_row(plant: PlantFile, flow: str, version: str) -> dict:
    """An outbox-like row of ``flow`` as the plant's edge would produce it."""
    item = (plant.products() or ["ITEM"])[0]
    down = flow == DOWNTIME
    machine = plant.machines[0]
    return {"txn_id": f"ONBOARD-{plant.plant.id}-{flow}-{uuid.uuid4().hex[:12]}", "correlation_id": "",
            "flow": flow, "item": f"{machine.line or 'Line01'}-{machine.name}" if down else item,
            "qty": 120.0 if down else float(plant.lot_size), "unit": "s" if down else plant.unit,
            "line": machine.line, "lot": f"ONBOARD-LOT-{uuid.uuid4().hex[:6]}" if flow == GOODS_RECEIPT else "",
            "source": "PLC" if down else "MES", "target": "MAINTENANCE" if down else "ERP",
            "t_created": 0.0, "schema_version": version}


def _names_field(response: httpx.Response, field: str) -> bool:
    try:
        detail = response.json().get("detail", [])
    except ValueError:
        return False
    return any(field in str(d.get("field", "")) for d in detail if isinstance(d, dict))


def check_contract(plant: PlantFile, target: GatewayTarget) -> tuple[list[Row], str | None]:
    """Rows of the contract check, and the txn id of one stored sample (for the read checks)."""
    version = plant.schema_version
    headers = {"X-Api-Key": target.api_key}
    rows: list[Row] = []
    stored: str | None = None
    with httpx.Client(base_url=target.url, timeout=15.0) as http:
        if version not in SUPPORTED_SCHEMAS:
            body = payload(sample_row(plant, OPERATION_CONFIRMATION, "v2"))
            answer = http.post(f"/{version}/events", json=body, headers=headers)
            rows.append(Row(CONTRACT, f"schema version {version}", FAIL,
                            f"the plant posts {version}; the gateway serves {', '.join(SUPPORTED_SCHEMAS)} "
                            f"(POST /{version}/events answered {answer.status_code})",
                            "have the plant's MES post v2 (canonical) or v1 (legacy) and set schema_version"))
            return rows, None
        for flow in plant_flows(plant):
            row = sample_row(plant, flow, version)
            answer = http.post(f"/{version}/events", json=payload(row), headers=headers)
            ok = answer.status_code == 202
            stored = stored or (row["txn_id"] if ok else None)
            rows.append(Row(CONTRACT, f"{version} {flow} sample", PASS if ok else FAIL,
                            f"POST /{version}/events answered {answer.status_code}: {answer.text[:160]}",
                            "" if ok else "compare the plant's payload with the gateway's /openapi.json"))
        for what, breaks, field in BROKEN[version]:
            body = payload(sample_row(plant, OPERATION_CONFIRMATION, version))
            breaks(body)
            answer = http.post(f"/{version}/events", json=body, headers=headers)
            ok = answer.status_code == 422 and _names_field(answer, field)
            rows.append(Row(CONTRACT, f"{version} invalid: {what}", PASS if ok else FAIL,
                            f"answered {answer.status_code}; detail {answer.text[:200]}",
                            "" if ok else f"the gateway must refuse it with 422 naming `{field}`"))
    return rows, stored


def check_gateway_security(plant: PlantFile, target: GatewayTarget, stored: str | None) -> list[Row]:
    """Credentials work for the plant's own data, and reach no other plant's (403); a bad key gets 401."""
    own, other = plant.plant.id, target.other_plant
    headers = {"X-Api-Key": target.api_key}
    probe = payload(sample_row(plant, OPERATION_CONFIRMATION, "v2"))
    rows: list[Row] = []
    with httpx.Client(base_url=target.url, timeout=15.0) as http:
        if stored is not None:
            answer = http.get(f"/v2/plants/{own}/events/{stored}", headers=headers)
            rows.append(_expect(answer, 200, f"key reads {own}'s own data",
                                f"GET /v2/plants/{own}/events/<sample> answered {answer.status_code}",
                                "issue the plant a key bound to its own plant id"))
        answer = http.post("/v2/events", json=probe, headers={"X-Api-Key": "not-a-key-" + uuid.uuid4().hex})
        rows.append(_expect(answer, 401, "unknown key refused", f"POST /v2/events with an unknown key answered "
                            f"{answer.status_code}", "the gateway must authenticate every request"))
        answer = http.post(f"/v2/plants/{other}/events", json=probe, headers=headers)
        rows.append(_expect(answer, 403, f"cannot post as {other}", f"POST /v2/plants/{other}/events with "
                            f"{own}'s key answered {answer.status_code}", "segment plants by key on the gateway"))
        answer = http.post(f"/v1/events?plant={other}", json=payload(sample_row(plant, OPERATION_CONFIRMATION, "v1")),
                           headers=headers)
        rows.append(_expect(answer, 403, f"cannot post v1 as {other}", f"POST /v1/events?plant={other} answered "
                            f"{answer.status_code}", "segment plants by key on the gateway"))
        answer = http.get(f"/v2/plants/{other}/events/{stored or 'ONBOARD-probe'}", headers=headers)
        rows.append(_expect(answer, 403, f"cannot read {other}'s data", f"GET /v2/plants/{other}/events/... "
                            f"answered {answer.status_code}", "segment plants by key on the gateway"))
    return rows


def _expect(answer: httpx.Response, status: int, name: str, evidence: str, fix: str) -> Row:
    ok = answer.status_code == status
    return Row(SECURITY, name, PASS if ok else FAIL, evidence, "" if ok else fix)
