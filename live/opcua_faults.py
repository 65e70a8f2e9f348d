"""Faults of a plant's OPC UA server, and the small HTTP endpoint that injects them.

Two faults a real PLC's server shows, done to the running asyncua server itself:

- **session drop**: the server closes every client session (its subscriptions deleted) and the TCP
  connection under it, as a server does after a watchdog or a restart of its OPC UA stack. The edge
  must notice, reconnect, create a new session and subscribe again; the counters it reads then are
  absolute values, so nothing is lost or counted twice.
- **publishing stall**: every subscription stops sending notifications (the server's publishing mode off;
  keep-alives still flow, so the session stays up) for ``seconds``, then resumes. The counters keep
  rising meanwhile; the first notification after the stall carries their new values and the edge's
  deltas cover the whole stall once.

``GET /faults`` returns the state (sessions, drops, stall, the PLC's counter totals); ``POST
/faults/session_drop``, ``POST /faults/stall`` (``{"seconds": s}``) and ``POST /faults/resume`` inject and
end them. The host (:mod:`live.plant_host`) serves it on 127.0.0.1 next to the OPC UA endpoint and writes
its URL to ``RUN_DIR/state/opcua-<plant>.control.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

_POLL = 0.1  # seconds between checks for subscriptions created during a stall (a reconnecting client's)


def control_file(run_dir: Path, plant: str) -> Path:
    """Where the plant host writes its fault endpoint's URL."""
    return Path(run_dir) / "state" / f"opcua-{plant}.control.json"


class OpcUaFaults:
    """Injects session drops and publishing stalls into one running ``PlantOpcUaServer`` (its loop only)."""

    def __init__(self, server: Any):
        self.server = server  # live.opcua_server.PlantOpcUaServer, started
        self.drops = 0
        self.sessions_dropped = 0
        self.stalls = 0
        self.stalled_until: float | None = None  # loop time the stall ends
        self.withheld = 0  # subscriptions paused by the current stall
        self._stall_task: asyncio.Task | None = None

    def _iserver(self):
        return self.server._server.iserver

    def _clients(self) -> list:
        bserver = self.server._server.bserver
        return list(bserver.clients) if bserver is not None else []

    async def drop_sessions(self) -> int:
        """Close every client session (deleting its subscriptions) and its connection; return how many."""
        dropped = 0
        for protocol in self._clients():
            session = getattr(protocol.processor, "session", None)
            if session is not None:
                with contextlib.suppress(Exception):
                    await session.close_session(delete_subs=True)
                dropped += 1
            if protocol.transport is not None:
                protocol.transport.abort()
        self.drops += 1
        self.sessions_dropped += dropped
        return dropped

    async def stall(self, seconds: float) -> None:
        """Stop every subscription's notifications for ``seconds`` (a running stall is extended)."""
        if seconds <= 0:
            raise ValueError(f"seconds: {seconds} must be > 0")
        loop = asyncio.get_running_loop()
        self.stalled_until = loop.time() + seconds
        self.stalls += 1
        if self._stall_task is None or self._stall_task.done():
            self._stall_task = asyncio.create_task(self._hold())

    async def resume(self) -> None:
        """End a stall now."""
        self.stalled_until = None
        if self._stall_task is not None:
            await asyncio.gather(self._stall_task, return_exceptions=True)

    async def _hold(self) -> None:
        loop, paused = asyncio.get_running_loop(), {}
        try:
            while self.stalled_until is not None and loop.time() < self.stalled_until:
                for sid, sub in list(self._iserver().subscription_service.subscriptions.items()):
                    if sid not in paused:
                        paused[sid] = sub
                        await sub.set_publishing_mode(False)
                self.withheld = len(paused)
                await asyncio.sleep(_POLL)
        finally:
            self.stalled_until = None
            for sub in paused.values():
                with contextlib.suppress(Exception):
                    await sub.set_publishing_mode(True)
            self.withheld = 0

    def state(self) -> dict[str, Any]:
        """Sessions, faults so far and the PLC's counter totals (what the edge must arrive at)."""
        bank = self.server.bank
        stalled = self.stalled_until is not None
        return {"plant": self.server.plant, "pid": os.getpid(), "url": self.server.url,
                "sessions": len(self._clients()), "drops": self.drops, "sessions_dropped": self.sessions_dropped,
                "stalled": stalled, "stalls": self.stalls, "withheld_subscriptions": self.withheld,
                "good_total": int(bank.good_total.sum()), "scrap_total": int(bank.scrap_total.sum()),
                "bank_t": float(bank.t), "wall": time.time()}

    async def handle(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """One request of the fault endpoint: (status, JSON)."""
        if path == "/faults" and method == "GET":
            return 200, self.state()
        if path == "/faults/session_drop" and method == "POST":
            return 200, {"dropped": await self.drop_sessions(), **self.state()}
        if path == "/faults/stall" and method == "POST":
            try:
                await self.stall(float(body.get("seconds", 10.0)))
            except (TypeError, ValueError) as exc:
                return 400, {"error": f"stall: {exc}"}
            return 200, self.state()
        if path == "/faults/resume" and method == "POST":
            await self.resume()
            return 200, self.state()
        return 404, {"error": f"no route {method} {path}; use GET /faults, POST /faults/session_drop, "
                              "/faults/stall {seconds} or /faults/resume"}


async def serve_faults(faults: OpcUaFaults, host: str = "127.0.0.1") -> tuple[asyncio.Server, str]:
    """Serve ``faults`` over HTTP/1.1 (one request per connection) on a free port; (server, URL)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(10):
                head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length = next((int(v) for k, _, v in (ln.partition(":") for ln in lines[1:])
                           if k.strip().lower() == "content-length"), 0)
            raw = await reader.readexactly(length) if length else b""
            try:
                body = json.loads(raw) if raw.strip() else {}
            except json.JSONDecodeError:
                status, reply = 400, {"error": "body is not JSON"}
            else:
                status, reply = await faults.handle(method.upper(), target.split("?", 1)[0].rstrip("/"), body)
            payload = json.dumps(reply).encode()
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}"
                         f"\r\nConnection: close\r\n\r\n".encode() + payload)
            await writer.drain()
        except (OSError, ValueError, asyncio.IncompleteReadError, TimeoutError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    server = await asyncio.start_server(handle, host, 0)
    return server, f"http://{host}:{server.sockets[0].getsockname()[1]}"
