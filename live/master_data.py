"""The ERP's master-data publisher, live: a new version to every plant's MES every ``load.master_data_interval``.

Version ``k`` is due at ``k * interval`` (the virtual engine's times, ``virtual/plant.py``); an ERP that is
down then publishes it once it is back. Each plant gets it as a durable message on
``downlink.<plant>.master_data`` (``txn_id`` ``MD-<plant>-v<k>``, the version in ``qty``), delivered like
every downlink message (:mod:`live.downlink`) and applied by the plant's MES (:mod:`live.plant_mes`). The
plan and what was published live in ``state/master_data.sqlite``. Postings a plant creates between a
version's release and its arrival count as version skew (``reports/skew.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from integration.sqlite import connect
from kernel.clock import ScaledClock
from kernel.routing import Routing
from kernel.trace import MASTER_DATA
from live.downlink import publish_downlink
from live.order_release import erp_up
from scenarios.spec import Scenario

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    txn_id TEXT PRIMARY KEY, plant TEXT, version INTEGER, t_planned REAL, t_released REAL
);
"""


def plan_versions(scenario: Scenario) -> list[tuple]:
    """(txn_id, plant, version, t_planned) of every version the run publishes."""
    every, end = scenario.load.master_data_interval, scenario.run.duration
    if every <= 0:
        return []
    count = int(end // every)
    return [(f"MD-{p.id}-v{k:04d}", p.id, k, k * every) for k in range(1, count + 1)
            for p in scenario.landscape.all_plants]


class MasterDataRelease:
    """Publishes due master-data versions of ``scenario`` while the plant's ERP is up."""

    def __init__(self, scenario: Scenario, run_dir: Path, clock: ScaledClock, erp_urls: dict[str, str]):
        self.clock, self.erp_urls, self.routing = clock, erp_urls, Routing.of(scenario)
        self.db = connect(Path(run_dir) / "state" / "master_data.sqlite")
        self.db.executescript(_SCHEMA)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR IGNORE INTO versions VALUES (?,?,?,?,NULL)", plan_versions(scenario))
        self.released = 0

    async def release_due(self, js: Any, http: httpx.AsyncClient) -> int:
        """Publish every version due by now whose ERP is up; returns how many messages."""
        now = self.clock.now()
        due = self.db.execute("SELECT txn_id, plant, version, t_planned FROM versions WHERE t_released IS NULL "
                              "AND t_planned <= ? ORDER BY version, plant", (now,)).fetchall()
        up: dict[str, bool] = {}
        sent = []
        for txn, plant, version, t_planned in due:
            kind = self.routing.target(plant, t_planned) or ""
            if kind not in up:
                up[kind] = await erp_up(http, self.erp_urls.get(kind))
            if not up[kind]:
                continue
            message = {"txn_id": txn, "flow": MASTER_DATA, "plant": plant, "lot": f"v{version}", "item": "",
                       "line": "", "qty": float(version), "unit": "", "t_created": now}
            await publish_downlink(js, message)
            sent.append((now, txn))
        if sent:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany("UPDATE versions SET t_released=? WHERE txn_id=?", sent)
            self.released += len(sent)
        return len(sent)

    def close(self) -> None:
        self.db.close()
