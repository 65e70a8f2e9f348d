"""The orchestrator's control calls: an idle connection is dropped before the service drops it, and a call
whose connection was lost before any answer is sent again once (never after a timeout)."""

from __future__ import annotations

import httpx
import pytest
import uvicorn

from live.admin_client import KEEPALIVE_S, admin_client, post_control


def flaky_client(failures: list[Exception]) -> tuple[httpx.Client, list[dict]]:
    """A client whose transport raises ``failures`` in turn, then answers 200 with the payload."""
    calls: list[dict] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append({"url": str(request.url), "body": request.content})
        if failures:
            raise failures.pop(0)
        return httpx.Response(200, content=request.content)

    return httpx.Client(transport=httpx.MockTransport(handle)), calls


def test_a_call_whose_connection_was_lost_is_sent_again_once():
    client, calls = flaky_client([httpx.RemoteProtocolError("Server disconnected without sending a response")])
    response = post_control(client, "http://erp/admin/mode", {"mode": "normal"})
    assert response.status_code == 200 and response.json() == {"mode": "normal"}
    assert len(calls) == 2 and calls[0] == calls[1]


def test_a_second_loss_or_a_timeout_is_reported_not_retried():
    client, calls = flaky_client([httpx.ConnectError("refused"), httpx.ConnectError("refused")])
    with pytest.raises(httpx.ConnectError):
        post_control(client, "http://erp/admin/mode", {"mode": "outage"})
    assert len(calls) == 2
    client, calls = flaky_client([httpx.ReadTimeout("busy")])
    with pytest.raises(httpx.ReadTimeout):
        post_control(client, "http://erp/admin/mode", {"mode": "outage"})
    assert len(calls) == 1  # the service may be applying it: the caller decides


def test_the_client_drops_an_idle_connection_before_the_services_do():
    served = uvicorn.Config(app=None).timeout_keep_alive  # the services run uvicorn with its default
    assert served > KEEPALIVE_S
    with admin_client() as client:
        assert client.timeout.read == 5.0
