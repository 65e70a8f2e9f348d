"""Messages of a hot subscription handed over as they are parsed, without nats-py's per-message work.

For every message nats-py parses its headers into a dict (a Python loop per header line), builds a ``Msg``
dataclass, queues it and wakes the subscription's task, which awaits the callback. The gateway's PubAck
inbox and the workers' pull inbox take tens of thousands of messages a second, and neither reads a header
on the way in: the workers need the body and the ack subject, the gateway the ack's body. So for those
subscriptions the client's ``_process_msg`` (nats-py 2.x, the one method its protocol parser calls per
message) is wrapped: a message of a registered subscription goes straight to its handler as a
:class:`RawMsg` whose headers are parsed only if someone reads them. Every other message, and every
message when the internals are not as expected (:func:`can_deliver_direct`), takes nats-py's own path.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

# nats-py's per-message entry point and the parameters its parser passes (nats/protocol/parser.py).
PROCESS_MSG = "_process_msg"
PROCESS_MSG_PARAMS = ["sid", "subject", "reply", "data", "headers"]
_ROUTES = "_synctwin_direct_routes"


class RawMsg:
    """One message as the parser saw it; ``headers`` (a dict, or None) is parsed on first use."""

    __slots__ = ("_nc", "subject", "reply", "data", "_raw_headers", "_headers")

    def __init__(self, nc: Any, subject: bytes, reply: bytes, data: bytes, raw_headers: bytes | None):
        self._nc = nc
        self.subject = subject.decode()
        self.reply = reply.decode()
        self.data = data
        self._raw_headers = raw_headers
        self._headers: dict[str, str] | None = None

    @property
    def headers(self) -> dict[str, str] | None:
        """The headers, as nats-py's ``Msg.headers`` would hold them."""
        raw = self._raw_headers
        if raw:
            out: dict[str, str] = {}
            for line in raw.split(b"\r\n")[1:]:  # the first line is ``NATS/1.0`` (and a status, if any)
                name, sep, value = line.partition(b":")
                if sep and name.strip():
                    out[name.strip().decode("ascii", "replace")] = value.strip().decode("utf-8", "replace")
            self._headers, self._raw_headers = out or None, None
        return self._headers

    @property
    def metadata(self) -> Any:
        """JetStream metadata from the ack subject (nats-py's ``Msg.Metadata``)."""
        from nats.aio.msg import Msg

        return Msg(_client=self._nc, subject=self.subject, reply=self.reply, data=self.data,
                   headers=self.headers).metadata


def can_deliver_direct(nc: Any, sub: Any) -> bool:
    """True when ``nc``'s per-message entry point and ``sub``'s id look as this module expects."""
    process = getattr(nc, PROCESS_MSG, None)
    if not callable(process) or not isinstance(getattr(sub, "_id", None), int):
        return False
    if hasattr(nc, _ROUTES):
        return True
    try:
        return list(inspect.signature(process).parameters) == PROCESS_MSG_PARAMS
    except (TypeError, ValueError):
        return False


def deliver_direct(nc: Any, sub: Any, handle: Callable[[RawMsg], None], reply_prefix: bytes = b"") -> bool:
    """Hand ``sub``'s messages whose reply subject starts with ``reply_prefix`` to ``handle`` as they are
    parsed (synchronously, in arrival order); others keep the subscription's callback. Returns False, and
    changes nothing, when nats-py's internals are not as expected (:func:`can_deliver_direct`)."""
    if not can_deliver_direct(nc, sub):
        return False
    routes: dict[int, tuple[bytes, Callable[[RawMsg], None]]] | None = getattr(nc, _ROUTES, None)
    if routes is None:
        routes = {}
        original = getattr(nc, PROCESS_MSG)

        async def process_msg(sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes) -> None:
            route = routes.get(sid)
            if route is not None and reply.startswith(route[0]):
                route[1](RawMsg(nc, subject, reply, data, headers or None))
                return
            await original(sid, subject, reply, data, headers)

        setattr(nc, PROCESS_MSG, process_msg)
        setattr(nc, _ROUTES, routes)
    routes[sub._id] = (reply_prefix, handle)
    return True


def stop_direct(nc: Any, sub: Any) -> None:
    """Stop handing ``sub``'s messages over (before unsubscribing it)."""
    routes = getattr(nc, _ROUTES, None)
    if routes is not None:
        routes.pop(getattr(sub, "_id", None), None)
