"""Pilot: the pilot edge posts through the embedded integration layer for N minutes; then the plant's
counters are reconciled against the ERP ledger -- lost 0, duplicates 0, quantities equal per item.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx

from integration.mapping import Mapped, PlantMapping
from kernel.clock import ScaledClock
from kernel.trace import ERP_POSTING_FLOWS, OPERATION_CONFIRMATION, SCRAP
from onboarding.fleet import Fleet, as_plant_spec
from onboarding.pilot_edge import PilotEdge
from onboarding.plant_file import PlantFile
from onboarding.profile import Profile
from onboarding.verdict import FAIL, PASS, Row

CHECK = "pilot"


def _settled(erp_url: str, gateway_url: str, admin_key: str, plant: str, txn_ids: list[str],
             deadline_s: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The plant's ledger rows and dead letters once every id in ``txn_ids`` is in one of them (or the
    deadline passed). Sample ids (``ONBOARD-``) of the contract check are left out of both."""
    end = time.monotonic() + deadline_s
    with httpx.Client(timeout=15.0) as http:
        while True:
            rows = [r for r in http.get(f"{erp_url}/ledger", params={"limit": 1_000_000}).json()["rows"]
                    if r["plant"] == plant and not r["txn_id"].startswith("ONBOARD-")]
            dead = [d for d in http.get(f"{gateway_url}/admin/dlq", params={"plant": plant, "limit": 100_000},
                                        headers={"X-Api-Key": admin_key}).json()["messages"]
                    if not d["txn_id"].startswith("ONBOARD-")]
            if set(txn_ids) <= {r["txn_id"] for r in rows} | {d["txn_id"] for d in dead} or time.monotonic() > end:
                return rows, dead
            time.sleep(0.25)


def reconcile(plant: PlantFile, fleet: Fleet, counters, outbox: list[dict], ledger: list[dict],
              dead: list[dict]) -> dict[str, Any]:
    """Lost, duplicates and per-item quantities: plant counters (converted) against ERP postings.

    A dead-lettered event is accounted for (not lost) but fails the pilot with its reason."""
    mapping = PlantMapping.from_spec(as_plant_spec(plant, fleet.base), fleet.base.landscape.items)
    posting = [r for r in outbox if r["flow"] in ERP_POSTING_FLOWS]
    in_ledger = Counter(r["txn_id"] for r in ledger)
    dead_ids = {d["txn_id"] for d in dead}
    lost = sorted(r["txn_id"] for r in posting if in_ledger[r["txn_id"]] == 0 and r["txn_id"] not in dead_ids)
    duplicates = sorted(t for t, n in in_ledger.items() if n > 1)
    expected: dict[tuple[str, str], float] = defaultdict(float)
    unmapped = set()
    for (m, kind), end in counters.end.items():
        product = plant.machines[m].product or "UNKNOWN"
        mapped = mapping.map_one(product, float(end - counters.start.get((m, kind), end)), plant.unit)
        flow = OPERATION_CONFIRMATION if kind == "good" else SCRAP
        if isinstance(mapped, Mapped):
            expected[(flow, mapped.item)] += mapped.qty
        else:
            unmapped.add(product)
    posted: dict[tuple[str, str], float] = defaultdict(float)
    for r in ledger:
        if r["flow"] in (OPERATION_CONFIRMATION, SCRAP):
            posted[(r["flow"], r["item"])] += float(r["qty"])
    keys = sorted(set(expected) | set(posted))
    items = [{"flow": f, "item": i, "counters": round(expected[(f, i)], 6), "ledger": round(posted[(f, i)], 6)}
             for f, i in keys]
    mismatched = [x for x in items if abs(x["counters"] - x["ledger"]) > 1e-6 * max(1.0, abs(x["counters"]))]
    return {"events": len(outbox), "erp_postings": len(posting), "ledger_rows": len(ledger), "lost": lost,
            "duplicates": duplicates, "items": items, "mismatched": mismatched, "unmapped": sorted(unmapped),
            "pending": sum(r["status"] == "pending" for r in outbox),
            "dead_lettered": sorted({f"{d['reason']}: {d['detail']}" for d in dead}),
            "dead_letter_count": len(dead),
            "rejected": [f"{r['txn_id']}: {r['reason']}" for r in outbox if r["status"] == "rejected"]}


def check_pilot(plant: PlantFile, fleet: Fleet, profile: Profile, pki_dir: Path, state_dir: Path, gateway_url: str,
                keys: tuple[str, str], erp_url: str, clock: ScaledClock, minutes: float,
                interval: float) -> tuple[list[Row], dict[str, Any]]:
    """Run the pilot edge, then reconcile; rows and the reconciliation figures. ``keys``: the plant's
    API key and the gateway's admin key (to read dead letters)."""
    api_key, admin_key = keys
    edge = PilotEdge(plant, profile, pki_dir, state_dir, gateway_url, api_key, clock, interval)
    try:
        try:
            counters = asyncio.run(edge.run(minutes * 60.0))
        except Exception as exc:  # noqa: BLE001 - a pilot that cannot run is a finding
            return [Row(CHECK, "pilot ran", FAIL, f"the pilot edge stopped: {type(exc).__name__} {exc}",
                        "fix the connectivity and security rows first")], {}
        outbox = edge.outbox()
    finally:
        edge.close()
    sent = [r["txn_id"] for r in outbox if r["status"] == "sent" and r["flow"] in ERP_POSTING_FLOWS]
    ledger, dead = _settled(erp_url, gateway_url, admin_key, plant.plant.id, sent, deadline_s=90.0)
    rec = reconcile(plant, fleet, counters, outbox, ledger, dead)
    rec["notifications"] = counters.notifications
    by_flow = Counter(r["flow"] for r in outbox)
    summary = (f"{minutes:g} min on {plant.endpoint.url}: {counters.notifications} notifications, {rec['events']} "
               f"events ({', '.join(f'{n} {f}' for f, n in sorted(by_flow.items()))}), {rec['ledger_rows']} ERP "
               "ledger rows")
    rows = [Row(CHECK, "events produced", PASS if rec["erp_postings"] else FAIL, summary,
                "" if rec["erp_postings"] else "the machines produced nothing during the pilot: run it while they "
                "run, or longer (--pilot-minutes)")]
    lost = rec["lost"] + [f"{n} still pending at the edge" for n in [rec["pending"]] if n]
    lost += rec["rejected"]
    rows.append(Row(CHECK, "lost", FAIL if lost else PASS,
                    f"lost {len(rec['lost'])}, pending {rec['pending']}, rejected {len(rec['rejected'])}"
                    + (f": {', '.join((rec['lost'] + rec['rejected'])[:5])}" if rec["lost"] or rec["rejected"] else ""),
                    "read the gateway and worker logs under the onboarding folder's state/logs" if lost else ""))
    if rec["dead_lettered"]:
        rows.append(Row(CHECK, "dead letters", FAIL, f"{rec['dead_letter_count']} events dead-lettered: "
                        + "; ".join(rec["dead_lettered"][:3]), "fix the master data rows, then run the pilot again"))
    rows.append(Row(CHECK, "duplicates", FAIL if rec["duplicates"] else PASS,
                    f"duplicates {len(rec['duplicates'])}" + (f": {', '.join(rec['duplicates'][:5])}"
                                                                if rec["duplicates"] else ""),
                    "keep idempotency on (integration.idempotency)" if rec["duplicates"] else ""))
    qty = "; ".join(f"{x['flow']} {x['item']}: counters {x['counters']:g}, ledger {x['ledger']:g}"
                    for x in rec["items"])
    bad = rec["mismatched"] or rec["unmapped"]
    rows.append(Row(CHECK, "counters reconcile with the ERP ledger", FAIL if bad else PASS, qty or "nothing produced",
                    ("map " + ", ".join(rec["unmapped"]) + " (master data rows)") if rec["unmapped"] else
                    ("compare the counters' units with master_data.units" if bad else "")))
    return rows, rec
