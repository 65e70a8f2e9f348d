"""The WAN relay: forwards while healed, fails every connection while cut, forwards again once healed."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from live.partition import Relays


@pytest.fixture()
def echo_server():
    """A line echo server on loopback (the stand-in for the gateway) on its own thread."""
    sock = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    sock.close()


def _echo(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(4096):
            conn.sendall(data)


async def _roundtrip(port: int, text: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(text + b"\n")
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()


def _fails(port: int) -> bool:
    try:
        return asyncio.run(_roundtrip(port, b"x")) == b""
    except (ConnectionError, OSError):
        return True


def test_cut_fails_new_and_open_connections_and_heal_forwards_again(echo_server):
    relays = Relays()
    try:
        port = int(relays.add("P01", echo_server).rsplit(":", 1)[1])
        assert asyncio.run(_roundtrip(port, b"hello")) == b"hello\n"

        async def open_then_cut() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"one\n")
            assert await reader.readline() == b"one\n"
            await asyncio.to_thread(relays.cut, "P01")
            try:
                writer.write(b"two\n")
                await writer.drain()
                return await asyncio.wait_for(reader.readline(), 5)
            except (ConnectionError, OSError):
                return b""
            finally:
                writer.close()

        assert asyncio.run(open_then_cut()) == b""  # the open connection died with the link
        assert _fails(port)  # and new ones fail while it is down
        assert relays.relays["P01"].refused >= 1
        relays.heal("P01")
        assert asyncio.run(_roundtrip(port, b"back")) == b"back\n"
    finally:
        relays.close()


def test_relay_to_a_service_that_is_down_fails_like_the_service():
    with socket.create_server(("127.0.0.1", 0)) as sock:
        gone = f"http://127.0.0.1:{sock.getsockname()[1]}"
    relays = Relays()
    try:
        port = int(relays.add("P02", gone).rsplit(":", 1)[1])
        assert _fails(port)
    finally:
        relays.close()
