"""A plain-ASGI fast lane for ``POST /v1/events`` and ``POST /v2/events``.

These two routes carry nearly all the traffic; per request, FastAPI's dependency solving, telemetry and
exception layers cost more CPU than validating and storing a single event. The lane answers them
directly with the same :class:`IngestCore` the FastAPI routes use (which still exist and document the
API in OpenAPI); every other request goes on to FastAPI unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

import pydantic_core

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

LANES = {"/v1/events": "v1", "/v2/events": "v2"}


class IngestLane:
    """ASGI middleware: serves the ingest routes itself, passes everything else to ``app``."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], core: Any):
        self.app = app
        self.core = core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        version = LANES.get(scope.get("path", "")) if scope["type"] == "http" else None
        if version is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        received = time.time()  # headers are in, the body may still be on a slow link: the edge clock's reference
        api_key = correlation = instance = edge_clock = rtt = ""
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                api_key = value.decode("latin-1")
            elif name == b"x-correlation-id":
                correlation = value.decode("latin-1")
            elif name == b"x-edge-instance":
                instance = value.decode("latin-1")
            elif name == b"x-edge-clock":
                edge_clock = value.decode("latin-1")
            elif name == b"x-edge-rtt":
                rtt = value.decode("latin-1")
        named = None
        if scope.get("query_string"):
            named = parse_qs(scope["query_string"].decode("latin-1")).get("plant", [None])[0]
        chunks, size, limit = [], 0, self.core.settings.max_body_bytes
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._send(send, 413, {"detail": f"body: larger than {limit} bytes; split the batch"}, {})
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        status, content, headers = await self.core.ingest_key(
            api_key, version, named, b"".join(chunks), correlation, (instance, edge_clock, received, rtt)
        )
        await self._send(send, status, content, headers)

    @staticmethod
    async def _send(send: Send, status: int, content: Any, headers: dict[str, str]) -> None:
        body = pydantic_core.to_json(content)
        raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})
