"""The fault proxy of the live stack: a TCP proxy per link with Toxiproxy's toxics.

Every hop a fault can hit goes through a :class:`FaultProxy` on loopback (the links of a live run:
:mod:`live.stack_links`). Disabled (``cut()``, Toxiproxy's ``enabled: false``, the scenario's
``wan_outage``) it resets every open connection and every new one, so the client sees the failures of
a broken link, not a flag; enabled it forwards, through the toxics of :mod:`live.toxics` (latency,
bandwidth, timeout, reset_peer, slow_close, slicer, limit_data) per direction. Toxics can be added and
removed while connections are open; each connection re-reads them for every chunk it forwards.

:class:`FaultProxies` runs the proxies on one event loop in a background thread so the synchronous
orchestrator (and the HTTP control API of :mod:`live.faultproxy_api`, shaped like Toxiproxy's) can
change them at any time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from live.toxics import Toxic, ToxicError, check_attributes, parse_toxic

_CHUNK = 1 << 16
_QUEUED_CHUNKS = 16  # read ahead per direction; a slow toxic backs up into the sender's socket
_IO_ERRORS = (OSError, asyncio.IncompleteReadError, ConnectionError)


class FaultProxy:
    """Forwards connections on ``127.0.0.1:<port>`` to ``target`` (``host``, ``port``) through its toxics."""

    def __init__(self, target: tuple[str, int], name: str = ""):
        self.name = name
        self.target = target
        self.port = 0
        self.enabled = True
        self.toxics: dict[str, Toxic] = {}
        self.refused = 0  # connections turned away while disabled
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._open: set[_Connection] = set()
        self._changed = asyncio.Event()

    @property
    def cut_now(self) -> bool:
        return not self.enabled

    async def start(self, port: int = 0) -> int:
        """Listen (a free port unless ``port``); return the port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    # ------------------------------------------------------------------ changes (on the loop)
    def _notify(self) -> None:
        """Wake every connection waiting on a change of toxics or state."""
        self._changed.set()
        self._changed = asyncio.Event()

    def changed(self) -> asyncio.Event:
        """An event set at the next change (take it before reading the state)."""
        return self._changed

    def cut(self) -> None:
        """Drop every open connection; reset new ones until :meth:`heal`."""
        self.enabled = False
        for conn in list(self._open):
            conn.abort()
        self._notify()

    def heal(self) -> None:
        """Forward new connections again."""
        self.enabled = True
        self._notify()

    def add_toxic(self, toxic: Toxic) -> Toxic:
        """Add ``toxic`` (its name must be new on this proxy); open connections feel it at once."""
        if toxic.name in self.toxics:
            raise ToxicError(f"name: toxic {toxic.name!r} already exists on proxy {self.name!r}; remove it first")
        toxic.added = asyncio.get_running_loop().time()
        self.toxics[toxic.name] = toxic
        self._notify()
        return toxic

    def update_toxic(self, name: str, body: dict[str, Any]) -> Toxic:
        """Change a toxic's ``attributes`` and/or ``toxicity`` (Toxiproxy's POST on the toxic)."""
        toxic = self.toxics[name]
        if "attributes" in body:
            toxic.attributes = {**toxic.attributes, **check_attributes(toxic.type, body["attributes"])}
        if "toxicity" in body:
            toxic.toxicity = parse_toxic({"type": toxic.type, "toxicity": body["toxicity"]}).toxicity
        self._notify()
        return toxic

    def remove_toxic(self, name: str) -> None:
        """Remove toxic ``name`` (KeyError when unknown)."""
        del self.toxics[name]
        self._notify()

    def reset(self) -> None:
        """Enabled, without toxics (Toxiproxy's ``POST /reset`` for one proxy)."""
        self.toxics.clear()
        self.heal()

    def as_json(self) -> dict[str, Any]:
        """Toxiproxy's proxy JSON plus connection counts (clients ignore what they do not know)."""
        return {"name": self.name, "listen": f"127.0.0.1:{self.port}", "upstream": f"{self.target[0]}:{self.target[1]}",
                "enabled": self.enabled, "toxics": [t.as_json() for t in self.toxics.values()],
                "connections": len(self._open), "accepted": self.accepted, "refused": self.refused}

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # ------------------------------------------------------------------------- connections
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.enabled:
            self.refused += 1
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(writer)  # the service itself is down: the client sees the same failure
            return
        if not self.enabled:  # cut while connecting
            self.refused += 1
            _abort(writer)
            _abort(up_writer)
            return
        self.accepted += 1
        conn = _Connection(self, writer, up_writer)
        self._open.add(conn)
        try:
            await conn.run(reader, up_reader)
        finally:
            self._open.discard(conn)
            conn.abort()


class _Connection:
    """One client connection and its upstream connection, with the toxics that apply to it."""

    def __init__(self, proxy: FaultProxy, client: asyncio.StreamWriter, server: asyncio.StreamWriter):
        self.proxy, self.client, self.server = proxy, client, server
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.sent = {"upstream": 0, "downstream": 0}
        self.closed = False
        self._rolls: dict[int, bool] = {}  # toxicity drawn once per (connection, toxic)

    def toxics(self, stream: str | None = None) -> list[Toxic]:
        """The toxics acting on this connection now (of one ``stream``, or of both)."""
        out = []
        for toxic in self.proxy.toxics.values():
            if stream is not None and toxic.stream != stream:
                continue
            if id(toxic) not in self._rolls:
                self._rolls[id(toxic)] = toxic.toxicity >= 1.0 or random.random() < toxic.toxicity
            if self._rolls[id(toxic)]:
                out.append(toxic)
        return out

    def abort(self) -> None:
        """Reset both sides (RST), as a failing link does."""
        self.closed = True
        _abort(self.client)
        _abort(self.server)

    async def run(self, client_reader: asyncio.StreamReader, server_reader: asyncio.StreamReader) -> None:
        watch = asyncio.create_task(self._watch())
        try:
            await asyncio.gather(self._pipe("upstream", client_reader, self.server),
                                 self._pipe("downstream", server_reader, self.client))
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    async def _watch(self) -> None:
        """Connection-level toxics: reset_peer and timeout close the connection after their ``timeout``."""
        while not self.closed:
            changed, now, wake = self.proxy.changed(), self.loop.time(), None
            for toxic in self.toxics():
                if toxic.type not in ("reset_peer", "timeout"):
                    continue
                if toxic.type == "timeout" and toxic.attr("timeout") == 0:
                    continue  # a black hole that never closes: data waits until the toxic goes
                at = max(self.started, toxic.added) + toxic.attr("timeout") / 1000
                if at <= now:
                    if toxic.type == "reset_peer":
                        self.abort()
                    else:
                        self._close()
                    return
                wake = at if wake is None else min(wake, at)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if wake is None else wake - now):
                    await changed.wait()

    def _close(self) -> None:
        """Close both sides with FIN (a timeout's end, limit_data)."""
        self.closed = True
        for writer in (self.client, self.server):
            with contextlib.suppress(Exception):
                writer.close()

    async def _pipe(self, stream: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue = asyncio.Queue(_QUEUED_CHUNKS)

        async def read() -> None:
            with contextlib.suppress(*_IO_ERRORS):
                while data := await reader.read(_CHUNK):
                    await queue.put((self.loop.time(), data))
            await queue.put(None)

        reading = asyncio.create_task(read())
        try:
            while (item := await queue.get()) is not None:
                if self.closed or not await self._forward(stream, *item, writer):
                    return
            await self._slow_close(stream)
            if not self.closed:
                with contextlib.suppress(Exception):
                    writer.close()
        except _IO_ERRORS:
            self.abort()
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading

    async def _forward(self, stream: str, arrived: float, data: bytes, writer: asyncio.StreamWriter) -> bool:
        """Pass one chunk through the stream's toxics; False once the connection is closed."""
        while any(t.type == "timeout" for t in self.toxics(stream)):  # black hole: held while the toxic lasts
            await self.proxy.changed().wait()
            if self.closed:
                return False
        toxics = self.toxics(stream)
        delay = sum(t.attr("latency") + random.uniform(-t.attr("jitter"), t.attr("jitter"))
                    for t in toxics if t.type == "latency") / 1000
        if delay > 0:
            await asyncio.sleep(max(0.0, arrived + delay - self.loop.time()))
        cut_after = None
        for t in toxics:
            if t.type == "limit_data":
                room = max(0, int(t.attr("bytes")) - self.sent[stream])
                cut_after = room if cut_after is None else min(cut_after, room)
        if cut_after is not None and len(data) >= cut_after:
            await self._write(writer, data[:cut_after], toxics, stream)
            self._close()
            return False
        await self._write(writer, data, toxics, stream)
        return not self.closed

    async def _write(self, writer: asyncio.StreamWriter, data: bytes, toxics: list[Toxic], stream: str) -> None:
        slicer = next((t for t in toxics if t.type == "slicer"), None)
        rates = [t.attr("rate") * 1000 for t in toxics if t.type == "bandwidth"]  # bytes per second
        rate = min(rates) if rates else None
        pieces = _slices(data, slicer) if slicer else [data]
        if rate:  # no piece longer than 100 ms of the rate, so pacing stays smooth
            step = max(1, int(rate / 10))
            pieces = [p[i:i + step] for p in pieces for i in range(0, len(p), step)]
        for i, piece in enumerate(pieces):
            if self.closed:
                return
            writer.write(piece)
            await writer.drain()
            self.sent[stream] += len(piece)
            pause = (len(piece) / rate if rate else 0.0) + (slicer.attr("delay") / 1e6 if slicer else 0.0)
            if pause and i < len(pieces) - 1 or rate:
                await asyncio.sleep(pause)

    async def _slow_close(self, stream: str) -> None:
        delays = [t.attr("delay") for t in self.toxics(stream) if t.type == "slow_close"]
        if delays:
            await asyncio.sleep(max(delays) / 1000)


def _slices(data: bytes, slicer: Toxic) -> list[bytes]:
    """Cut ``data`` into slices of average_size ± size_variation bytes (at least 1)."""
    average, variation = int(slicer.attr("average_size")), int(slicer.attr("size_variation"))
    out, i = [], 0
    while i < len(data):
        size = max(1, average + (random.randint(-variation, variation) if variation else 0))
        out.append(data[i:i + size])
        i += size
    return out


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close at once (RST), as a failing link does; never raises."""
    with contextlib.suppress(Exception):
        writer.transport.abort()


class FaultProxies:
    """Named :class:`FaultProxy` s on one background event loop; every method is called from other threads."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxies", daemon=True)
        self._thread.start()
        self.relays: dict[str, FaultProxy] = {}
        self.api_url = ""
        self._api: asyncio.Server | None = None

    @property
    def proxies(self) -> dict[str, FaultProxy]:
        return self.relays

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def add(self, name: str, target_url: str) -> str:
        """A proxy ``name`` to the service at ``target_url``; returns the URL to use instead (same scheme
        and path, e.g. an ``opc.tcp://`` endpoint keeps its path)."""
        parsed = urlsplit(target_url)
        proxy = FaultProxy((parsed.hostname or "127.0.0.1", parsed.port or 80), name)
        port = self._call(proxy.start())
        self.relays[name] = proxy
        return urlunsplit((parsed.scheme, f"127.0.0.1:{port}", parsed.path, parsed.query, ""))

    def run(self, action, *args):
        """Run ``action(*args)`` on the proxies' loop and return its result (exceptions propagate)."""
        return self._call(_now(action, *args))

    def cut(self, name: str) -> None:
        """Disable proxy ``name`` (every connection reset); returns once it is cut."""
        self.run(self.relays[name].cut)

    def heal(self, name: str) -> None:
        """Enable proxy ``name`` again; returns once it is healed."""
        self.run(self.relays[name].heal)

    def heal_all(self) -> None:
        """Enable every proxy (a partition still open when the run ends)."""
        for name in self.relays:
            self.heal(name)

    def add_toxic(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Add a toxic from Toxiproxy's JSON to proxy ``name``; returns the toxic's JSON."""
        toxic = parse_toxic(body)
        return self.run(self.relays[name].add_toxic, toxic).as_json()

    def remove_toxic(self, name: str, toxic: str) -> None:
        self.run(self.relays[name].remove_toxic, toxic)

    def reset(self) -> None:
        """Every proxy enabled, without toxics."""
        for proxy in self.relays.values():
            self.run(proxy.reset)

    def state(self, name: str) -> dict[str, Any]:
        """Proxy ``name`` as Toxiproxy's JSON."""
        return self.run(self.relays[name].as_json)

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """Answer one Toxiproxy-API request (as :mod:`live.faultproxy_api` would): (status, JSON)."""
        from live.faultproxy_api import answer

        return self._call(answer(self, method, path, body))

    def serve_api(self, port: int = 0) -> str:
        """Start the Toxiproxy-shaped HTTP control API (:mod:`live.faultproxy_api`); returns its URL."""
        from live.faultproxy_api import start_api

        self._api = self._call(start_api(self, port))
        self.api_url = f"http://127.0.0.1:{self._api.sockets[0].getsockname()[1]}"
        return self.api_url

    def close(self) -> None:
        """Close every proxy and the API and stop the loop (idempotent)."""
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self._call(_close_all(list(self.relays.values()), self._api))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()


# The names the stack has used so far.
TcpRelay = FaultProxy
Relays = FaultProxies


async def _now(action, *args):
    return action(*args)


async def _close_all(proxies: list[FaultProxy], api: asyncio.Server | None) -> None:
    if api is not None:
        api.close()
    await asyncio.gather(*(p.close() for p in proxies), return_exceptions=True)
