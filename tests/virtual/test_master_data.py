"""The virtual plant receives the ERP's master-data versions: one row per version, delayed by a WAN outage."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from scenarios.loader import load_scenario
from virtual import batch as B
from virtual.hosts import PlantHost

SCENARIO = """
name: master-data
description: One plant; the ERP publishes master data every 30 minutes; the WAN is cut around the second.
run: {duration: 3h, seed: 3}
landscape:
  erp: {kind: legacy}
  items: {FG-100: {unit: EA}, RM-10: {unit: KG}}
  plants:
    - {id: P01, lines: 1, machines_per_line: 2, cycle_time: 30s, products: [FG-100]}
load: {master_data_interval: 30m}
faults:
  - {kind: wan_outage, at: 55m, duration: 20m, plants: [P01]}
  - {kind: erp_outage, at: 2h25m, duration: 10m, erp: legacy}
"""


def test_master_data_versions_reach_the_plant_after_wan_and_erp_outages(tmp_path: Path):
    (tmp_path / "s.yaml").write_text(SCENARIO)
    host = PlantHost(load_scenario(tmp_path / "s.yaml"), [0], 1)
    rows = [host.step(t)[(0, 0)].local for t in (3600.0, 7200.0, 10800.0)]
    md = [B.take(r, r["flow"] == B.FLOW_CODE["master_data"]) for r in rows]
    version = np.concatenate([m["qty"] for m in md])
    released = np.concatenate([m["t_created"] for m in md])
    applied = np.concatenate([m["t_delivered"] for m in md])
    assert version.tolist() == [1, 2, 3, 4, 5, 6]
    # Version 5 is due at 2h30 while the ERP is down (2h25-2h35): released when it is back.
    assert released.tolist() == [1800.0, 3600.0, 5400.0, 7200.0, 2 * 3600 + 35 * 60, 10800.0]
    assert applied[1] >= 75 * 60  # version 2 waited out the WAN outage (55-75 min) ...
    assert (applied[[0, 2, 3, 5]] - released[[0, 2, 3, 5]] < 1.0).all()  # ... the others arrived at once
