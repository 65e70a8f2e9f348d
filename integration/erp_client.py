"""The ERP twin's HTTP API as the integration workers use it: single and batch postings, ledger lookups,
over :mod:`integration.http1` keep-alive connections."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import pydantic_core

from integration.http1 import Http1Connection, NotSent, Response, retry_after_seconds

REASON_ERP_REJECTED = "erp_rejected"
_NO_ANSWER = (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


@dataclass(frozen=True)
class ErpAnswer:
    """How one posting request ended. ``landed`` is None when the request may or may not have been
    applied (timeout, connection dropped after sending)."""

    ok: bool
    landed: bool | None = False
    retry_after: float | None = None  # wall seconds, from a 429's Retry-After
    retry_after_scenario: float | None = None  # scenario seconds, from X-Retry-After-Scenario when sent
    permanent: str | None = None
    detail: str = ""


class ErpClient:
    """One ERP twin over a small pool of keep-alive connections."""

    def __init__(self, kind: str, base_url: str, timeout: float = 10.0, connections: int = 16):
        parsed = urlsplit(base_url)
        if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
            raise ValueError(f"--erp {kind}={base_url}: write http://HOST:PORT (plain HTTP on loopback)")
        self.kind, self.timeout, self.max_idle = kind, timeout, connections
        self._address = (parsed.hostname, parsed.port)
        self._idle: list[Http1Connection] = []

    async def _request(self, method: str, path: str, body: bytes | None = None) -> Response:
        conn = self._idle.pop() if self._idle else Http1Connection(*self._address)
        async with asyncio.timeout(self.timeout):
            response = await conn.request(method, path, body)
        if conn.writer is not None and len(self._idle) < self.max_idle:
            self._idle.append(conn)
        return response

    async def post(self, body: dict) -> ErpAnswer:
        """POST /postings (one posting) and classify the answer for the delivery state machine."""
        return await self._post("/postings", json.dumps(body).encode())

    async def post_batch(self, bodies: list[dict]) -> ErpAnswer:
        """POST /postings/batch: the ERP applies all of ``bodies`` in one transaction, or none."""
        return await self._post("/postings/batch", pydantic_core.to_json(bodies))

    async def _post(self, path: str, data: bytes) -> ErpAnswer:
        try:
            response = await self._request("POST", path, data)
        except NotSent as exc:
            return ErpAnswer(False, landed=False, detail=f"{self.kind}: {exc}")
        except _NO_ANSWER as exc:  # sent, but no usable answer came: the postings may exist
            return ErpAnswer(False, landed=None, detail=f"{self.kind}: {type(exc).__name__}")
        code = response.status
        if code in (200, 201):
            return ErpAnswer(True, landed=True)
        if code == 429:
            return ErpAnswer(False, retry_after=retry_after_seconds(response.headers.get("retry-after"), 1.0),
                             retry_after_scenario=_scenario_wait(response.headers), detail=f"{self.kind}: 429")
        if code >= 500 or code == 408:
            return ErpAnswer(False, detail=f"{self.kind}: {code}")
        return ErpAnswer(False, permanent=f"{REASON_ERP_REJECTED}_{code}",
                         detail=f"{self.kind}: {code} {response.body[:200].decode(errors='replace')}")

    async def posted_among(self, txn_ids: list[str]) -> set[str] | None:
        """Which of ``txn_ids`` the ledger holds (one ``POST /ledger/lookup``); None when the ERP
        cannot tell right now. Used only after a request whose answer was lost."""
        try:
            response = await self._request("POST", "/ledger/lookup", json.dumps({"txn_ids": txn_ids}).encode())
            found = response.json()
        except (NotSent, *_NO_ANSWER):
            return None
        if response.status != 200 or not isinstance(found, dict):
            return None
        return set(found.get("found", ())) & set(txn_ids)

    async def has_posting(self, txn_id: str) -> bool | None:
        """Does the ledger hold ``txn_id``? None when the ERP cannot tell right now.

        Pages through ``GET /ledger`` (the single-key form of :meth:`posted_among`)."""
        after = 0
        while True:
            query = urlencode({"txn_id": txn_id, "after": after, "limit": 20_000})
            try:
                response = await self._request("GET", f"/ledger?{query}")
                page = response.json()
            except (NotSent, *_NO_ANSWER):
                return None
            if response.status != 200:
                return None
            rows = page.get("rows", []) if isinstance(page, dict) else page
            if any(row.get("txn_id") == txn_id for row in rows):
                return True
            if not rows or not isinstance(page, dict) or page.get("next_after", after) == after:
                return False
            after = page["next_after"]

    async def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


def _scenario_wait(headers: dict[str, str]) -> float | None:
    """The ERP twin's precise wait in scenario seconds; whole wall seconds would over-wait at high speed."""
    try:
        return max(0.0, float(headers["x-retry-after-scenario"]))
    except (KeyError, ValueError):
        return None
