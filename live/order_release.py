"""The ERP's order release job, live: production orders released to each plant's MES through the downlink.

Orders arrive as the virtual engine draws them (``virtual/plant.py``): a Poisson process of
``load.orders`` per line over the run, on each line at random, for the line's product and one lot
(``load.lot_size``), from the plant's own seeded stream. The plan is written once to
``state/orders.sqlite`` (``INSERT OR IGNORE``, the same draws on a restart). At each order's time the job
releases it -- unless the ERP that serves the plant then (``kernel.routing``) is down: a down ERP releases
nothing, so the order is released once it is back (``t_created`` = the release, as in the virtual engine).
A released order is published on ``downlink.<plant>.order_release`` (stream ``DOWNLINK``, ``txn_id`` as the
de-duplication key) and marked sent; :mod:`live.downlink` delivers it to the plant's MES, whose ack comes
back as an uplink event (:mod:`live.plant_mes`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np

from integration.sqlite import connect
from kernel.clock import ScaledClock
from kernel.routing import Routing
from kernel.trace import ORDER_RELEASE
from live.downlink import publish_downlink
from scenarios.generator import plant_seed
from scenarios.spec import Scenario
from twins.wms import poisson_times

_STREAM = 0x0DE5  # the order plan's draws, independent of the plant's other streams

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    txn_id TEXT PRIMARY KEY, plant TEXT, line TEXT, item TEXT, qty REAL, unit TEXT, t_planned REAL,
    t_released REAL, erp TEXT
);
CREATE INDEX IF NOT EXISTS orders_due ON orders(t_released, t_planned);
"""


def plan_orders(scenario: Scenario) -> list[tuple]:
    """Every order of the run: (txn_id, plant, line, item, qty, unit, t_planned), per plant in time order."""
    rows = []
    load = scenario.load
    for i, plant in enumerate(scenario.landscape.all_plants):
        rng = np.random.default_rng(plant_seed(scenario, i, stream=_STREAM))
        t = poisson_times(load.orders * plant.lines, 0.0, scenario.run.duration, rng)
        line = rng.integers(0, plant.lines, t.size)
        for n, (when, li) in enumerate(zip(t, line, strict=True)):
            item = plant.products[int(li) % len(plant.products)]
            rows.append((f"OR-{plant.id}-{n + 1:05d}", plant.id, f"Line{int(li) + 1:02d}", item,
                         float(load.lot_size), plant.unit, float(when)))
    return rows


async def erp_up(http: httpx.AsyncClient, url: str | None) -> bool:
    """Whether the ERP twin at ``url`` is up (not in an outage); no URL: nothing to ask, it counts as up."""
    if url is None:
        return True
    try:
        resp = await http.get(f"{url}/admin/mode", timeout=2.0)
        return resp.status_code == 200 and resp.json().get("mode") != "outage"
    except httpx.HTTPError:
        return False  # a killed or unreachable ERP releases nothing either


class OrderRelease:
    """Releases the planned orders of ``scenario`` when due and their ERP is up (``erp_urls``: kind -> URL)."""

    def __init__(self, scenario: Scenario, run_dir: Path, clock: ScaledClock, erp_urls: dict[str, str]):
        self.clock, self.erp_urls = clock, erp_urls
        self.routing = Routing.of(scenario)
        self.db = connect(Path(run_dir) / "state" / "orders.sqlite")
        self.db.executescript(_SCHEMA)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR IGNORE INTO orders VALUES (?,?,?,?,?,?,?,NULL,NULL)", plan_orders(scenario))
        self.released = 0

    async def _erp_up(self, http: httpx.AsyncClient, kind: str) -> bool:
        return await erp_up(http, self.erp_urls.get(kind))

    async def release_due(self, js: Any, http: httpx.AsyncClient) -> int:
        """Release and publish every order due by now whose ERP is up; returns how many."""
        now = self.clock.now()
        due = self.db.execute("SELECT txn_id, plant, line, item, qty, unit, t_planned FROM orders "
                              "WHERE t_released IS NULL AND t_planned <= ? ORDER BY t_planned", (now,)).fetchall()
        up: dict[str, bool] = {}
        sent = []
        for txn, plant, line, item, qty, unit, t_planned in due:
            kind = self.routing.target(plant, t_planned) or ""
            if kind not in up:
                up[kind] = await self._erp_up(http, kind)
            if not up[kind]:
                continue
            message = {"txn_id": txn, "flow": ORDER_RELEASE, "plant": plant, "line": line, "lot": txn, "item": item,
                       "qty": qty, "unit": unit, "t_created": now}
            await publish_downlink(js, message)
            sent.append((now, kind, txn))
        if sent:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany("UPDATE orders SET t_released=?, erp=? WHERE txn_id=?", sent)
            self.released += len(sent)
        return len(sent)

    def close(self) -> None:
        self.db.close()
