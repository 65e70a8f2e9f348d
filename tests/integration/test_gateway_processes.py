"""The service commands as processes: READY lines, clean SIGTERM, SIGKILL, several workers, Locust."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import nats
import pytest

from integration.broker import EVENTS_STREAM
from live.procs import ProcessError, Service
from tests.integration.gateway_support import read_stream, service_command, start_gateway
from tests.polling import poll

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_broker_command_streams_and_clean_stop(tmp_path):
    proc = Service("broker", service_command("broker", "--data-dir", str(tmp_path / "nats")), tmp_path)
    url = proc.start()

    async def streams():
        nc = await nats.connect(url)
        names = [s.config.name for s in await nc.jetstream().streams_info()]
        await nc.close()
        return sorted(names)

    assert asyncio.run(streams()) == ["DLQ", "EVENTS"]
    server_pid = _children(proc.proc.pid)[0]
    assert proc.stop() == 0
    poll(lambda: not _alive(server_pid))


def test_broker_command_killed_takes_its_server_with_it(tmp_path):
    proc = Service("broker", service_command("broker", "--data-dir", str(tmp_path / "nats")), tmp_path)
    proc.start()
    server_pid = _children(proc.proc.pid)[0]
    os.kill(proc.proc.pid, signal.SIGKILL)  # the command alone, not its process group
    proc.proc.wait()
    poll(lambda: not _alive(server_pid))  # no orphaned nats-server keeps the port
    proc.stop()


def test_two_gateway_workers_store_everything_and_stop_cleanly(broker, credentials_file):
    gw = start_gateway(broker, credentials_file, "--workers", "2")
    workers = _children(gw.proc.pid)
    body = [{"txn_id": f"w2-{i}", "flow": "scrap", "item": "FG-100", "qty": 1, "unit": "EA", "t_created": 1.0}
            for i in range(50)]
    with httpx.Client(base_url=gw.url, headers={"X-Api-Key": "key-p02"}) as client:
        codes = {client.post("/v2/events", content=json.dumps(body[i:i + 5])).status_code
                 for i in range(0, 50, 5)}
    assert codes == {202}
    ids = {m.headers["Nats-Msg-Id"] for m in read_stream(broker.url, "events.P02.scrap.*")}
    assert {f"w2-{i}" for i in range(50)} <= ids
    assert len(workers) >= 2
    assert gw.stop() == 0
    poll(lambda: not any(_alive(w) for w in workers), deadline_s=10)


def test_gateway_refuses_a_bad_rate_limit(credentials_file, tmp_path):
    proc = Service("gateway", service_command("gateway", "--nats", "nats://127.0.0.1:1", "--credentials",
                                                  str(credentials_file), "--rate-limit", "lots"), tmp_path)
    with pytest.raises(ProcessError, match="code 2"):
        proc.start()
    assert "rate_limit" in proc.log_path.read_text()


def test_locustfile_drives_the_gateway(gateway, broker, tmp_path):
    async def count():
        nc = await nats.connect(broker.url)
        info = await nc.jetstream().stream_info(EVENTS_STREAM)
        await nc.close()
        return info.state.messages

    before = asyncio.run(count())
    env = {**os.environ, "SYNCTWIN_LOAD_API_KEY": "key-p01", "SYNCTWIN_LOAD_BATCH": "20"}
    seconds = 8  # Locust's start-up on a busy machine can take a few of them
    run = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"), "--headless", "-u", "2",
         "-r", "2", "-t", f"{seconds}s", "--host", gateway.url, "--only-summary", "--csv", str(tmp_path / "l"),
         "IngestUser"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    stats = (tmp_path / "l_stats.csv").read_text().splitlines()
    total = dict(zip(stats[0].split(","), stats[-1].split(","), strict=False))
    assert int(total["Request Count"]) > 0 and int(total["Failure Count"]) == 0
    stored = asyncio.run(count()) - before
    # whole batches only (202 stores 20, 429 none), within what P01's 2000 events/s bucket allows
    assert stored > 0 and stored % 20 == 0
    assert stored <= 2000 * (seconds + 2) + 2000


def test_sigterm_during_load_is_a_clean_exit(broker, credentials_file):
    gw = start_gateway(broker, credentials_file)
    body = json.dumps([{"txn_id": f"tm-{i}", "flow": "scrap", "item": "FG-100", "qty": 1, "unit": "EA",
                        "t_created": 1.0} for i in range(200)])
    r = httpx.post(f"{gw.url}/v2/events", content=body, headers={"X-Api-Key": "key-p01"})
    assert r.status_code == 202
    gw.proc.send_signal(signal.SIGTERM)
    assert gw.proc.wait(15) == 0
