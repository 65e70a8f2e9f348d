"""Plant files and fleets for onboarding tests, built in code (no server needed)."""

from __future__ import annotations

from pathlib import Path

from onboarding.plant_file import PlantFile, parse_plant

FLEET = """\
name: onboarding-fleet
description: Two plants on the legacy ERP; the new plant's chocolate items are in its item master.
run:
  duration: 1h
  seed: 5
landscape:
  erp:
    kind: legacy
    service: {mean: 20ms}
  cloud_erp:
    kind: cloud
    service: {mean: 20ms}
    rate_limit: 40/s
    network_latency: 50ms
  items:
    FG-100: {unit: EA}
    RM-10: {unit: KG}
    CHOC-250: {unit: KG}
    CHOC-100: {unit: KG}
  plants:
    - {id: P, count: 2, lines: 2, machines_per_line: 3, products: [FG-100]}
rollout:
  waves:
    - {name: W1, at: 20m, plants: [P01], erp: cloud}
    - {name: W2, at: 40m, plants: [P02], erp: cloud}
slas:
  order_release_latency: null
  quality_hold_propagation: null
  inventory_posting_delay: {p95: 30s}
"""


def write_fleet(folder: Path) -> Path:
    path = folder / "fleet.yaml"
    path.write_text(FLEET)
    return path


def machine(name: str, product: str | None, scrap: bool = True) -> dict:
    signals = {"state": {"node": f"ns=2;s={name}.State"}, "good": {"node": f"ns=2;s={name}.Good"}}
    if scrap:
        signals["scrap"] = {"node": f"ns=2;s={name}.Scrap"}
    entry = {"name": name, "line": "Line01", "signals": signals, "cycle_time": 2.0}
    if product:
        entry["product"] = product
    return entry


def plant(**changes) -> PlantFile:
    """A small plant in grams making CHOC-250 and CHOC-100, mapped completely unless ``changes`` say otherwise."""
    data = {
        "plant": {"id": "LNZ"},
        "endpoint": {"url": "opc.tcp://127.0.0.1:4840"},
        "unit": "G",
        "master_data": {"items": {"CHOC-250": "CHOC-250", "CHOC-100": "CHOC-100"},
                        "units": {"G": {"to": "KG", "factor": 0.001}}},
        "machines": [machine("Filler_A", "CHOC-250"), machine("Filler_B", "CHOC-100", scrap=False)],
    }
    for key, value in changes.items():
        data[key] = value
    return parse_plant(data)
