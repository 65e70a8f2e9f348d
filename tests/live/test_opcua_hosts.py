"""The plant server hosted two ways: in a Ray actor, and as the ``opcua``/``edge`` command processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asyncua import Client, ua

from live.opcua_server import namespace_uri
from live.plant_actor import LivePlantHandle
from scenarios.loader import load_scenario
from tests.polling import poll

SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "library" / "erp-outage.yaml"
pytestmark = pytest.mark.slow


async def read_state_and_good(url: str, plant: str, machine: str) -> tuple[str, int]:
    async with Client(url) as client:
        idx = await client.get_namespace_index(namespace_uri(plant))
        state = await client.get_node(ua.NodeId(f"{plant}.{machine}.State", idx)).read_value()
        good = await client.get_node(ua.NodeId(f"{plant}.{machine}.GoodCount", idx)).read_value()
        return state, good



def unreachable_gateway(run_dir: Path) -> list[str]:
    """Edge options pointing at a port nothing listens on (the edge must store, not lose, events)."""
    return ["--gateway", "http://127.0.0.1:9", "--api-key", "k", "--run-dir", str(run_dir)]

def test_live_plant_actor_serves_the_plant_and_stops(ray_cluster, tmp_path):
    handle = LivePlantHandle(load_scenario(SCENARIO), "P02", tmp_path, epoch=time.time(), speed=600, insecure=True)
    url = handle.start()
    try:
        assert url.startswith("opc.tcp://127.0.0.1:") and url.endswith("/synctwin/P02")
        handle.command(0, "Stop")
        state, _ = asyncio.run(read_state_and_good(url, "P02", "Line01.M01"))
        assert state == "idle"
        poll(lambda: handle.status()["good"] > 0, 10, 0.05, "the actor's plant produced nothing")
        assert handle.status()["plant"] == "P02"
    finally:
        handle.stop()
    with pytest.raises(OSError):
        asyncio.run(read_state_and_good(url, "P02", "Line01.M01"))


def start_command(args: list[str]) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "synctwin.commands.live_plant", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # blocks until READY (or EOF if the process failed)
    if not line.startswith("READY "):
        proc.kill()
        raise AssertionError(f"no READY line: {line!r} {proc.stderr.read()}")
    return proc, line.split()[2]


def opcua_args(run_dir: Path, *extra: str) -> list[str]:
    """``synctwin opcua`` for plant P01 of the test scenario at speed 600."""
    return ["opcua", "--scenario", str(SCENARIO), "--plant", "P01", "--run-dir", str(run_dir),
            "--epoch", str(time.time()), "--speed", "600", *extra]


def test_opcua_command_prints_ready_serves_and_stops_on_sigterm(tmp_path):
    proc, url = start_command(opcua_args(tmp_path, "--insecure"))
    try:
        state, good = asyncio.run(read_state_and_good(url, "P01", "Line02.M06"))
        assert state in ("running", "down") and good >= 0
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0


def test_edge_command_starts_stops_and_keeps_its_outbox(tmp_path):
    opcua, url = start_command(opcua_args(tmp_path))
    try:
        edge, where = start_command(
            [
                "edge",
                "--scenario",
                str(SCENARIO),
                "--plant",
                "P01",
                "--opcua",
                url,
                *unreachable_gateway(tmp_path),
                "--speed",
                "600",
            ]
        )
        assert where.endswith("/state/edge-P01.sqlite")
        outbox = tmp_path / "state" / "edge-P01.sqlite"
        import sqlite3

        def pending() -> int:
            with sqlite3.connect(outbox) as db:
                return db.execute("SELECT COUNT(*) FROM outbox WHERE status='pending'").fetchone()[0]

        # Secure session, production, confirmations; the gateway is unreachable.
        poll(lambda: pending() > 0, 20, 0.1, "the edge stored no events")
        edge.send_signal(signal.SIGTERM)
        assert edge.wait(20) == 0
        assert pending() > 0
    finally:
        opcua.send_signal(signal.SIGTERM)
        opcua.wait(20)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--plant", "P09"], "P01, P02, P03"),
        (["--plant", "P01", "--opcua", "http://x"], "--opcua"),
    ],
)
def test_edge_command_names_bad_input(tmp_path, args, message):
    base = {"--plant": "P01", "--opcua": "opc.tcp://127.0.0.1:1/x"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    flat = [x for kv in base.items() for x in kv]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "synctwin.commands.live_plant",
            "edge",
            "--scenario",
            str(SCENARIO),
            *flat,
            *unreachable_gateway(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert result.returncode == 2 and message in result.stderr
