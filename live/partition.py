"""Network partitions for the live stack: a TCP relay per plant between its edge and the gateway.

A ``wan_outage`` must look to the edge like the real thing -- connections that fail -- not like a
flag it is told about. Each plant's edge therefore reaches the gateway through a :class:`TcpRelay`
on loopback; ``cut()`` resets every open connection and every new one (the edge's requests fail as
across a broken WAN link, and its store-and-forward takes over), ``heal()`` forwards again. The
relays run on one event loop in a background thread (:class:`Relays`), so the synchronous
orchestrator can cut and heal them at fault times.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from urllib.parse import urlsplit

_CHUNK = 1 << 16


class TcpRelay:
    """Forwards connections on ``127.0.0.1:<port>`` to ``target`` (``host``, ``port``) until cut."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self.cut_now = False
        self.refused = 0  # connections turned away while cut
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self, port: int = 0) -> int:
        """Listen (a free port unless ``port``); return the port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def cut(self) -> None:
        """Drop every open connection; refuse new ones until :meth:`heal`."""
        self.cut_now = True
        for writer in list(self._open):
            _abort(writer)

    def heal(self) -> None:
        """Forward new connections again."""
        self.cut_now = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut_now:
            self.refused += 1
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(writer)  # the gateway itself is down: the edge sees the same failure
            return
        self._open.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._open.discard(w)
                _abort(w)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError, ConnectionError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
    _abort(writer)


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close at once (RST), as a failing link does; never raises."""
    with contextlib.suppress(Exception):
        writer.transport.abort()


class Relays:
    """Named :class:`TcpRelay` s on one background event loop; every method is called from other threads."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="relays", daemon=True)
        self._thread.start()
        self.relays: dict[str, TcpRelay] = {}

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def add(self, name: str, target_url: str) -> str:
        """A relay ``name`` to the HTTP service at ``target_url``; returns the URL to use instead."""
        parsed = urlsplit(target_url)
        relay = TcpRelay((parsed.hostname or "127.0.0.1", parsed.port or 80))
        port = self._call(relay.start())
        self.relays[name] = relay
        return f"{parsed.scheme}://127.0.0.1:{port}"

    def cut(self, name: str) -> None:
        """Partition relay ``name``; returns once it is cut."""
        self._call(_now(self.relays[name].cut))

    def heal(self, name: str) -> None:
        """Forward through relay ``name`` again; returns once it is healed."""
        self._call(_now(self.relays[name].heal))

    def heal_all(self) -> None:
        """Heal every relay (a partition still open when the run ends)."""
        for name in self.relays:
            self.heal(name)

    def close(self) -> None:
        """Close every relay and stop the loop (idempotent)."""
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self._call(_close_all(list(self.relays.values())))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()


async def _now(action) -> None:
    action()


async def _close_all(relays: list[TcpRelay]) -> None:
    await asyncio.gather(*(r.close() for r in relays), return_exceptions=True)
