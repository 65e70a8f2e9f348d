"""The ERP twin's record of quality holds: which lot is on hold, as the QMS told the ERP.

``POST /quality`` takes a batch of a plant's quality holds and releases (in the order the QMS published
them, delivered by :class:`live.downlink.ErpQualityDeliverer` from the ``DOWNLINK`` stream) and applies each
``txn_id`` once, in one SQLite transaction with the lot's status: the answer lists, per message, ``applied``
or ``duplicate`` and when it first reached the ERP (scenario seconds), the same shape as the plant's endpoint
(:mod:`live.plant_api`), so the deliverer records both alike. ``GET /quality/lots/{lot}`` is the lot's status.

Unlike postings (the integration layer de-duplicates those), the ERP applies a hold idempotently itself: a
hold status is a state, not a ledger entry. An ERP in ``outage`` mode refuses these like postings (503), so
holds wait in JetStream and arrive after the outage; the other fault modes act on postings only. Stored in
``<ledger>-quality.sqlite`` beside the ledger, committed before the answer leaves.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from integration.sqlite import connect
from kernel.trace import QUALITY_HOLD, QUALITY_RELEASE

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quality_applied (txn_id TEXT PRIMARY KEY, lot TEXT, flow TEXT, t_received REAL);
CREATE TABLE IF NOT EXISTS lot_holds (
    lot TEXT PRIMARY KEY, plant TEXT, item TEXT, held INTEGER, t_hold REAL, t_hold_at_erp REAL,
    t_release REAL, t_release_at_erp REAL
);
"""


class QualityMessage(BaseModel):
    """One quality hold or release for the ERP."""

    model_config = ConfigDict(extra="forbid")

    txn_id: str = Field(min_length=1, max_length=128)
    flow: Literal[QUALITY_HOLD, QUALITY_RELEASE]  # type: ignore[valid-type]
    lot: str = Field(min_length=1)
    item: str = ""
    line: str = ""
    qty: float | None = None
    unit: str = ""
    t_created: float = Field(ge=0, description="scenario seconds of the QMS's decision")


class QualityBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plant: str = Field(min_length=1)
    messages: list[QualityMessage] = Field(max_length=10_000)


class LotHolds:
    """The ERP's lot hold status and the quality messages it applied (SQLite)."""

    def __init__(self, path: Path | str):
        self.db = connect(Path(path))
        self.db.executescript(_SCHEMA)

    def apply(self, plant: str, messages: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
        """Apply each message once (in order, one transaction); per message its status and first arrival."""
        answers = []
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for m in messages:
                cur = self.db.execute("INSERT OR IGNORE INTO quality_applied VALUES (?,?,?,?)",
                                      (m["txn_id"], m["lot"], m["flow"], now))
                if cur.rowcount == 0:
                    (t_first,) = self.db.execute("SELECT t_received FROM quality_applied WHERE txn_id=?",
                                                 (m["txn_id"],)).fetchone()
                    answers.append({"txn_id": m["txn_id"], "status": "duplicate", "t_received": t_first})
                    continue
                self.db.execute("INSERT OR IGNORE INTO lot_holds (lot, plant, item, held) VALUES (?,?,?,0)",
                                (m["lot"], plant, m.get("item", "")))
                if m["flow"] == QUALITY_HOLD:
                    # A hold whose copy came back after its release (a restarted deliverer's unacknowledged one,
                    # redelivered after the ack wait) is recorded but does not hold the released lot again.
                    self.db.execute("UPDATE lot_holds SET held=(t_release_at_erp IS NULL), t_hold=?, t_hold_at_erp=? "
                                    "WHERE lot=?", (m["t_created"], now, m["lot"]))
                else:
                    self.db.execute("UPDATE lot_holds SET held=0, t_release=?, t_release_at_erp=? WHERE lot=?",
                                    (m["t_created"], now, m["lot"]))
                answers.append({"txn_id": m["txn_id"], "status": "applied", "t_received": now})
        return answers

    def status(self, lot: str) -> dict[str, Any] | None:
        """The lot's hold status, or None when the ERP never heard of it."""
        cur = self.db.execute("SELECT * FROM lot_holds WHERE lot=?", (lot,))
        row = cur.fetchone()
        if row is None:
            return None
        out = dict(zip([c[0] for c in cur.description], row, strict=True))
        out["held"] = bool(out["held"])
        return out

    def close(self) -> None:
        self.db.close()


def quality_db(ledger_db: Path | str) -> Path:
    """Where the ERP whose ledger is ``ledger_db`` keeps its lot holds."""
    p = Path(ledger_db)
    return p.with_name(f"{p.stem}-quality.sqlite")


def add_quality_routes(app: FastAPI, twin: Any, ledger_db: Path | str) -> LotHolds:
    """Add ``POST /quality`` and ``GET /quality/lots/{lot}`` to the ERP twin's ``app`` (``twin``: its mode,
    network latency and clock); returns the store (the caller closes it)."""
    holds = LotHolds(quality_db(ledger_db))

    @app.post("/quality", summary="Apply quality holds and releases of a plant's lots (idempotent per txn_id)")
    async def quality(batch: QualityBatch) -> Any:
        if twin.spec.network_latency:
            await asyncio.sleep(twin.clock.wall_delay(twin.spec.network_latency))
        if twin.mode == "outage":
            return JSONResponse({"detail": f"ERP {twin.kind} is down (outage)"}, 503, headers={"Retry-After": "1"})
        answers = holds.apply(batch.plant, [m.model_dump() for m in batch.messages], twin.clock.now())
        return {"erp": twin.kind, "plant": batch.plant, "results": answers}

    @app.get("/quality/lots/{lot}", summary="A lot's quality hold status at the ERP")
    async def lot_status(lot: str) -> Any:
        status = holds.status(lot)
        if status is None:
            return JSONResponse({"detail": f"lot {lot!r}: no quality message reached ERP {twin.kind}"}, 404)
        return {"erp": twin.kind, **status}

    return holds
