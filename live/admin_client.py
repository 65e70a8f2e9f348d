"""The orchestrator's control calls to its services (an ERP twin's fault mode, set and cleared).

Both ends keep an idle connection for 5 s (uvicorn's ``timeout_keep_alive``, httpx's ``keepalive_expiry``):
a call made just as the service closes one meets "Server disconnected without sending a response". At speed
60 an outage of 5 scenario minutes is exactly 5 wall seconds, so its end met that race and the ERP stayed
down for the rest of the run. The client drops idle connections sooner, and a control call, which sets a
state and so may be sent twice, is tried once more on a fresh connection when the first was lost that way.
"""

from __future__ import annotations

from typing import Any

import httpx

KEEPALIVE_S = 2.0  # under the services' 5 s, so the client closes an idle connection first


def admin_client(timeout: float = 5.0) -> httpx.Client:
    """One client for every control call of a run (building one per call costs an SSL context, ~1 s wall on
    a busy machine)."""
    return httpx.Client(timeout=timeout, limits=httpx.Limits(keepalive_expiry=KEEPALIVE_S))


def post_control(client: httpx.Client, url: str, payload: dict[str, Any]) -> httpx.Response:
    """POST a control call that sets a state; sent again once when the connection was lost before any answer
    (not after a timeout: the service may be busy applying it)."""
    try:
        return client.post(url, json=payload)
    except (httpx.RemoteProtocolError, httpx.ConnectError):
        return client.post(url, json=payload)
