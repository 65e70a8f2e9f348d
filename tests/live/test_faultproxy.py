"""The fault proxy on real sockets: a link down and each of Toxiproxy's toxics, through the Python
interface and through the Toxiproxy-shaped HTTP control API."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest

from live.faultproxy import FaultProxies
from live.toxics import ToxicError, parse_toxic


@pytest.fixture()
def service():
    """A line server on loopback on its own thread: ``blob N`` answers N bytes and closes; else echo."""
    sock = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=_answer, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join()
    sock.close()


def _answer(conn: socket.socket) -> None:
    with conn, conn.makefile("rb") as lines:
        for line in lines:
            if line.startswith(b"blob "):
                conn.sendall(b"x" * int(line.split()[1]))
                return
            conn.sendall(line)


@pytest.fixture()
def proxies():
    p = FaultProxies()
    yield p
    p.close()


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def _roundtrip(port: int, text: bytes, timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(text + b"\n")
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()


def _timed(port: int, text: bytes = b"ping") -> tuple[bytes, float]:
    start = time.monotonic()
    answer = asyncio.run(_roundtrip(port, text))
    return answer, time.monotonic() - start


def _fails(port: int) -> bool:
    try:
        return asyncio.run(_roundtrip(port, b"x")) == b""
    except (ConnectionError, OSError):
        return True


async def _reads(port: int, request: bytes, timeout: float = 5.0) -> tuple[list[bytes], float]:
    """Every read until EOF (or a reset), and the seconds until EOF."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    chunks: list[bytes] = []
    try:
        writer.write(request + b"\n")
        await writer.drain()
        while chunk := await asyncio.wait_for(reader.read(1 << 16), timeout):
            chunks.append(chunk)
    except ConnectionError:
        pass
    finally:
        writer.close()
    return chunks, time.monotonic() - start


def test_down_fails_new_and_open_connections_and_up_forwards_again(service, proxies):
    port = _port(proxies.add("P01", service))
    assert asyncio.run(_roundtrip(port, b"hello")) == b"hello\n"

    async def open_then_cut() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"one\n")
        assert await reader.readline() == b"one\n"
        await asyncio.to_thread(proxies.cut, "P01")
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
    assert proxies.state("P01")["enabled"] is False and proxies.relays["P01"].refused >= 1
    proxies.heal("P01")
    assert asyncio.run(_roundtrip(port, b"back")) == b"back\n"


def test_proxy_to_a_service_that_is_down_fails_like_the_service(proxies):
    with socket.create_server(("127.0.0.1", 0)) as sock:
        gone = f"http://127.0.0.1:{sock.getsockname()[1]}"
    assert _fails(_port(proxies.add("P02", gone)))


def test_latency_with_jitter_delays_each_answer_until_removed(service, proxies):
    port = _port(proxies.add("L", service))
    proxies.add_toxic("L", {"type": "latency", "stream": "downstream", "attributes": {"latency": 300, "jitter": 50}})
    answer, took = _timed(port)
    assert answer == b"ping\n" and took >= 0.25
    proxies.remove_toxic("L", "latency_downstream")
    answer, took = _timed(port)
    assert answer == b"ping\n" and took < 0.2


def test_bandwidth_paces_bytes_to_the_rate(service, proxies):
    port = _port(proxies.add("B", service))
    proxies.add_toxic("B", {"type": "bandwidth", "attributes": {"rate": 20}})  # 20 KB/s downstream
    chunks, took = asyncio.run(_reads(port, b"blob 12000"))
    assert sum(map(len, chunks)) == 12000
    assert took >= 0.5  # 12 KB at 20 KB/s is 0.6 s


def test_timeout_black_holes_data_until_removed_and_closes_after_its_timeout(service, proxies):
    port = _port(proxies.add("T", service))
    proxies.add_toxic("T", {"type": "timeout", "stream": "upstream", "attributes": {"timeout": 0}})

    async def held_then_released() -> tuple[bool, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"held\n")
        await writer.drain()
        try:
            await asyncio.wait_for(reader.readline(), 0.4)
            held = False
        except TimeoutError:
            held = True
        await asyncio.to_thread(proxies.remove_toxic, "T", "timeout_upstream")
        answer = await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        return held, answer

    assert asyncio.run(held_then_released()) == (True, b"held\n")
    proxies.add_toxic("T", {"type": "timeout", "attributes": {"timeout": 300}})
    chunks, took = asyncio.run(_reads(port, b"blob 10"))
    assert chunks == [] and 0.25 <= took < 3  # nothing passed; closed after 300 ms


def test_reset_peer_resets_connections(service, proxies):
    port = _port(proxies.add("R", service))
    proxies.add_toxic("R", {"type": "reset_peer", "attributes": {"timeout": 0}})
    assert _fails(port)
    proxies.remove_toxic("R", "reset_peer_downstream")
    assert asyncio.run(_roundtrip(port, b"ok")) == b"ok\n"


def test_slow_close_holds_the_close(service, proxies):
    port = _port(proxies.add("S", service))
    _, quick = asyncio.run(_reads(port, b"blob 5"))
    proxies.add_toxic("S", {"type": "slow_close", "attributes": {"delay": 400}})
    chunks, took = asyncio.run(_reads(port, b"blob 5"))
    assert b"".join(chunks) == b"xxxxx" and took >= 0.35 > quick


def test_slicer_cuts_data_into_small_delayed_slices(service, proxies):
    port = _port(proxies.add("C", service))
    proxies.add_toxic("C", {"type": "slicer", "attributes": {"average_size": 10, "size_variation": 2,
                                                              "delay": 20_000}})
    chunks, _ = asyncio.run(_reads(port, b"blob 100"))
    assert b"".join(chunks) == b"x" * 100
    assert len(chunks) >= 6 and max(map(len, chunks)) <= 24  # slices 20 ms apart arrive as separate reads


def test_limit_data_closes_after_that_many_bytes(service, proxies):
    port = _port(proxies.add("D", service))
    proxies.add_toxic("D", {"type": "limit_data", "attributes": {"bytes": 10}})
    chunks, _ = asyncio.run(_reads(port, b"blob 1000"))
    assert b"".join(chunks) == b"x" * 10


def test_toxicity_zero_spares_every_connection(service, proxies):
    port = _port(proxies.add("Z", service))
    proxies.add_toxic("Z", {"type": "reset_peer", "toxicity": 0.0})
    assert asyncio.run(_roundtrip(port, b"spared")) == b"spared\n"


def test_bad_toxics_are_refused_naming_the_field():
    with pytest.raises(ToxicError, match="type: 'lag'"):
        parse_toxic({"type": "lag"})
    with pytest.raises(ToxicError, match="stream"):
        parse_toxic({"type": "latency", "stream": "sideways"})
    with pytest.raises(ToxicError, match=r"attributes\.delay: not an attribute of latency"):
        parse_toxic({"type": "latency", "attributes": {"delay": 3}})
    with pytest.raises(ToxicError, match="toxicity"):
        parse_toxic({"type": "latency", "toxicity": 2})


def test_http_control_api_is_shaped_like_toxiproxys(service, proxies):
    port = _port(proxies.add("wan-P01", service))
    api = proxies.serve_api()
    with httpx.Client(base_url=api, timeout=5) as http:
        assert "wan-P01" in http.get("/proxies").json()
        toxic = http.post("/proxies/wan-P01/toxics", json={"type": "latency", "stream": "downstream",
                                                          "toxicity": 1, "attributes": {"latency": 250}})
        assert toxic.status_code == 200 and toxic.json()["name"] == "latency_downstream"
        assert http.post("/proxies/wan-P01/toxics", json={"type": "latency", "stream": "downstream"}
                         ).status_code == 409
        bad = http.post("/proxies/wan-P01/toxics", json={"type": "latency", "attributes": {"rate": 1}})
        assert bad.status_code == 400 and "attributes.rate" in bad.json()["error"]
        assert _timed(port)[1] >= 0.2
        assert http.get("/proxies/wan-P01/toxics").json()[0]["attributes"] == {"latency": 250.0}
        assert http.delete("/proxies/wan-P01/toxics/latency_downstream").status_code == 204
        assert http.post("/proxies/wan-P01", json={"enabled": False}).json()["enabled"] is False
        assert _fails(port)
        assert http.post("/reset").status_code == 204
        state = http.get("/proxies/wan-P01").json()
        assert state["enabled"] is True and state["toxics"] == [] and state["refused"] >= 1
        assert asyncio.run(_roundtrip(port, b"up")) == b"up\n"
        assert http.get("/proxies/nope").status_code == 404
        created = http.post("/proxies", json={"name": "extra", "upstream": service.removeprefix("http://")})
        assert created.status_code == 201
        assert asyncio.run(_roundtrip(_port(created.json()["listen"]), b"new")) == b"new\n"


def test_links_of_every_hop_route_only_their_client_and_unknown_names_are_refused():
    from live.stack_links import chosen_links, client_urls

    every = chosen_links(("all",), ["P01", "P02"], ["legacy"])
    assert [link.name for link in every] == ["broker-gateway", "erp-legacy-worker", "opcua-P01", "opcua-P02"]
    assert chosen_links(("wan-P01",), ["P01"], ["legacy"]) == []  # the WAN links are always there
    urls = {"broker": "nats://127.0.0.1:1", "erp-legacy": "http://127.0.0.1:2", "opcua-P01": "opc.tcp://127.0.0.1:3/p"}
    links = {"broker-gateway": "nats://127.0.0.1:11", "erp-legacy-worker": "http://127.0.0.1:12",
             "opcua-P01": "opc.tcp://127.0.0.1:13/p"}
    assert client_urls(urls, links, every, "gateway")["broker"] == "nats://127.0.0.1:11"
    assert client_urls(urls, links, every, "worker-2")["erp-legacy"] == "http://127.0.0.1:12"
    assert client_urls(urls, links, every, "edge-P01")["opcua-P01"] == "opc.tcp://127.0.0.1:13/p"
    assert client_urls(urls, links, every, "edge-P02") == urls  # no link of its own: direct
    with pytest.raises(ValueError, match="no link 'broker-worker'.*known: all, broker-gateway"):
        chosen_links(("broker-worker",), ["P01"], ["legacy"])


def test_a_proxy_keeps_the_scheme_and_path_of_its_service_url(service):
    proxies = FaultProxies()
    try:
        url = proxies.add("opcua-P01", service.replace("http://", "opc.tcp://") + "/synctwin/P01")
        assert url.startswith("opc.tcp://127.0.0.1:") and url.endswith("/synctwin/P01")
    finally:
        proxies.close()
