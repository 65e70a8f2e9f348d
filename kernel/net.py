"""The one ``free_port`` of the tree: both engines' hosts, the broker, the load driver and the tests
pick their listening ports with it."""

from __future__ import annotations

import socket

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nothing listens on right now (a listener binds it right after; asyncua
    and nats-server need a concrete port in their URLs, so port 0 cannot be passed through)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
