"""The fault proxies' HTTP control API, shaped like Toxiproxy's, so its clients and habits carry over.

| method and path | does |
|---|---|
| ``GET /version`` | the API's version |
| ``GET /proxies`` | every proxy as ``{name: proxy}`` |
| ``POST /proxies`` | create ``{"name", "upstream": "host:port", "listen": "127.0.0.1:0", "enabled"}`` |
| ``GET /proxies/{name}`` | one proxy: listen, upstream, enabled, toxics (plus connection counts) |
| ``POST /proxies/{name}`` | ``{"enabled": false}`` takes the link down (every connection reset), ``true`` back up |
| ``DELETE /proxies/{name}`` | remove the proxy |
| ``GET /proxies/{name}/toxics`` | its toxics |
| ``POST /proxies/{name}/toxics`` | add ``{"type", "stream", "toxicity", "attributes", "name"}`` |
| ``GET``/``POST``/``DELETE /proxies/{name}/toxics/{toxic}`` | read, update (attributes, toxicity), remove |
| ``POST /reset`` | every proxy enabled, every toxic removed |

Served on the proxies' own event loop (:class:`live.faultproxy.FaultProxies`), HTTP/1.1 with one request
per connection; errors are JSON ``{"error": ..., "status": ...}`` with 400, 404 or 409.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

from live.faultproxy import FaultProxy
from live.toxics import ToxicError, parse_toxic

if TYPE_CHECKING:
    from live.faultproxy import FaultProxies

VERSION = "synctwin-faultproxy 1 (Toxiproxy API 2.x subset)"
_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found",
            405: "Method Not Allowed", 409: "Conflict", 500: "Internal Server Error"}


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def start_api(proxies: FaultProxies, port: int = 0) -> asyncio.Server:
    """Listen on ``127.0.0.1:port`` (free port when 0) on the running loop."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, body = await _read_request(reader)
            status, reply = await answer(proxies, method, path, body)
            payload = b"" if status == 204 else json.dumps(reply).encode()
            head = (f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n")
            writer.write(head.encode() + payload)
            await writer.drain()
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def answer(proxies: FaultProxies, method: str, path: str, body: Any) -> tuple[int, Any]:
    """:func:`route` with its errors as Toxiproxy-style JSON answers."""
    try:
        return await route(proxies, method, path, body)
    except ApiError as exc:
        return exc.status, {"error": str(exc), "status": exc.status}
    except ToxicError as exc:
        return 400, {"error": str(exc), "status": 400}


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, Any]:
    async with asyncio.timeout(10):
        head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    raw = await reader.readexactly(length) if length else b""
    try:
        body = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError as exc:
        body = ApiError(400, f"body is not JSON: {exc}")
    return method.upper(), target.split("?", 1)[0].rstrip("/") or "/", body


async def route(proxies: FaultProxies, method: str, path: str, body: Any) -> tuple[int, Any]:
    """Answer one request: (status, JSON)."""
    if isinstance(body, ApiError):
        raise body
    parts = [p for p in path.split("/") if p]
    if parts == ["version"]:
        return 200, {"version": VERSION}
    if parts == ["reset"] and method == "POST":
        for proxy in proxies.relays.values():
            proxy.reset()
        return 204, None
    if parts == ["proxies"]:
        if method == "GET":
            return 200, {name: p.as_json() for name, p in proxies.relays.items()}
        if method == "POST":
            return 201, (await _create(proxies, body)).as_json()
    if len(parts) >= 2 and parts[0] == "proxies":
        proxy = proxies.relays.get(parts[1])
        if proxy is None:
            raise ApiError(404, f"proxy {parts[1]!r} not found; known: {', '.join(proxies.relays) or 'none'}")
        if len(parts) == 2:
            return await _proxy(proxies, proxy, method, body)
        if parts[2] == "toxics":
            return _toxics(proxy, method, parts[3] if len(parts) > 3 else None, body)
    raise ApiError(404 if method in ("GET", "POST", "DELETE") else 405, f"no route {method} {path}")


async def _create(proxies: FaultProxies, body: dict[str, Any]) -> FaultProxy:
    name, upstream = body.get("name"), body.get("upstream", "")
    if not name or ":" not in str(upstream):
        raise ApiError(400, "a proxy needs name and upstream (host:port)")
    if name in proxies.relays:
        raise ApiError(409, f"proxy {name!r} already exists")
    host, port = str(upstream).rsplit(":", 1)
    proxy = FaultProxy((host, int(port)), name)
    listen = str(body.get("listen", "127.0.0.1:0"))
    await proxy.start(int(listen.rsplit(":", 1)[1]) if ":" in listen else 0)
    if body.get("enabled") is False:
        proxy.cut()
    proxies.relays[name] = proxy
    return proxy


async def _proxy(proxies: FaultProxies, proxy: FaultProxy, method: str, body: dict[str, Any]) -> tuple[int, Any]:
    if method == "GET":
        return 200, proxy.as_json()
    if method == "POST":
        if "enabled" in body:
            (proxy.heal if body["enabled"] else proxy.cut)()
        return 200, proxy.as_json()
    if method == "DELETE":
        proxies.relays.pop(proxy.name, None)
        await proxy.close()
        return 204, None
    raise ApiError(405, f"{method} is not allowed on a proxy")


def _toxics(proxy: FaultProxy, method: str, name: str | None, body: dict[str, Any]) -> tuple[int, Any]:
    if name is None:
        if method == "GET":
            return 200, [t.as_json() for t in proxy.toxics.values()]
        if method == "POST":
            toxic = parse_toxic(body)
            if toxic.name in proxy.toxics:
                raise ApiError(409, f"toxic {toxic.name!r} already exists on proxy {proxy.name!r}")
            return 200, proxy.add_toxic(toxic).as_json()
        raise ApiError(405, f"{method} is not allowed on toxics")
    if name not in proxy.toxics:
        raise ApiError(404, f"toxic {name!r} not found on proxy {proxy.name!r}")
    if method == "GET":
        return 200, proxy.toxics[name].as_json()
    if method == "POST":
        return 200, proxy.update_toxic(name, body).as_json()
    if method == "DELETE":
        proxy.remove_toxic(name)
        return 204, None
    raise ApiError(405, f"{method} is not allowed on a toxic")
