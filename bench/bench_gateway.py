"""Durable-ingest throughput of the gateway: real broker, real uvicorn, load from a separate process.

Starts an embedded NATS JetStream server and the gateway (1 or more uvicorn worker processes), then
drives it with ``wrk`` (a C load generator, one thread, so it takes little of the 2 cores) using Lua
scripts that give every event a unique ``txn_id``. Two phases: batched ingestion (``--batch`` events
per request) and single-event requests. After each phase the EVENTS stream is counted, so the figure
is events *stored with a PubAck*, not just answered.

    .venv/bin/python bench/bench_gateway.py --duration 15 --workers 1
    .venv/bin/python bench/bench_gateway.py --load locust   # Locust headless from loadtest/ instead

Needs ``wrk`` on PATH (``apt-get install wrk``) for the default load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration.broker import EVENTS_STREAM, EmbeddedNats, ensure_streams  # noqa: E402
from live.procs import Service  # noqa: E402

KEY = "bench-key-p01"

LUA = r"""
local batch = %(batch)d
local n = 0
local prefix = "%(prefix)s-" .. tostring(math.random(1, 1e9)) .. "-"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Api-Key"] = "%(key)s"
local function event(i)
  return '{"txn_id":"' .. prefix .. i .. '","flow":"backflush","item":"RM-10","qty":1.5,"unit":"KG",' ..
         '"line":"L1","t_created":' .. i .. '.0}'
end
request = function()
  if batch == 1 then
    n = n + 1
    return wrk.format(nil, "/v2/events", nil, event(n))
  end
  local parts = {}
  for j = 1, batch do
    n = n + 1
    parts[j] = event(n)
  end
  return wrk.format(nil, "/v2/events", nil, "[" .. table.concat(parts, ",") .. "]")
end
"""


async def _stream_count(url: str) -> int:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await ensure_streams(js)
    info = await js.stream_info(EVENTS_STREAM)
    await nc.close()
    return int(info.state.messages)


def stream_count(url: str) -> int:
    """Messages currently stored in the EVENTS stream."""
    return asyncio.run(_stream_count(url))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(kids)
        frontier += kids
    total = 0.0
    for p in tree:
        try:
            total += _cpu_seconds(p)
        except (OSError, IndexError, ValueError):
            continue
    return total


def settled_count(url: str, quiet_s: float = 1.0, deadline_s: float = 30.0) -> int:
    """The EVENTS count once it stopped changing (requests cut off by the load generator finish first)."""
    end = time.monotonic() + deadline_s
    last = stream_count(url)
    while time.monotonic() < end:
        time.sleep(quiet_s)
        now = stream_count(url)
        if now == last:
            return now
        last = now
    return last


def start_gateway(nats_url: str, creds: Path, workers: int, log_dir: Path) -> Service:
    """``synctwin gateway`` with ``workers`` uvicorn processes and no effective rate limit."""
    service = Service("gateway", [
        sys.executable, "-m", "synctwin.commands.live_services", "gateway", "--nats", nats_url,
        "--credentials", str(creds), "--rate-limit", "1000000000/s", "--max-batch", "10000",
        "--workers", str(workers)], log_dir)
    service.start()
    return service


def run_wrk(url: str, batch: int, connections: int, duration: int, workdir: Path) -> dict[str, float]:
    """One wrk run; returns requests/s, non-2xx count and latency percentiles (ms)."""
    script = workdir / f"wrk-{batch}.lua"
    script.write_text(LUA % {"batch": batch, "prefix": f"b{batch}", "key": KEY})
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    def grab(pattern: str, default: float = 0.0) -> float:
        m = re.search(pattern, out)
        return float(m.group(1)) if m else default

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    return {"rps": grab(r"Requests/sec:\s+([\d.]+)"), "non2xx": grab(r"Non-2xx or 3xx responses:\s+(\d+)"),
            "requests": grab(r"(\d+) requests in"), "p50_ms": ms("50"), "p99_ms": ms("99"), "raw": out}


def run_locust(url: str, batch: int, users: int, duration: int, processes: int) -> dict[str, float]:
    """One headless Locust run from loadtest/locustfile.py; returns requests/s and failures."""
    env = {**os.environ, "SYNCTWIN_LOAD_API_KEY": KEY, "SYNCTWIN_LOAD_BATCH": str(batch)}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtest" / "locustfile.py"), "--headless",
             "-u", str(users), "-r", str(users), "-t", f"{duration}s", "--host", url, "--processes",
             str(processes), "--csv", f"{tmp}/run", "--only-summary", "IngestUser"],
            env=env, cwd=ROOT, capture_output=True, text=True, check=False,
        )
        rows = Path(f"{tmp}/run_stats.csv").read_text().splitlines()
    header = rows[0].split(",")
    total = dict(zip(header, rows[-1].split(","), strict=False))
    return {"rps": float(total["Requests/s"]), "non2xx": float(total["Failure Count"]),
            "requests": float(total["Request Count"]), "p50_ms": float(total["50%"]),
            "p99_ms": float(total["99%"]), "raw": ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15, help="seconds per phase")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--batch", type=int, default=500, help="events per batched request")
    parser.add_argument("--batch-connections", type=int, default=8)
    parser.add_argument("--single-connections", type=int, default=64)
    parser.add_argument("--load", choices=["wrk", "locust"], default="wrk")
    parser.add_argument("--locust-processes", type=int, default=1)
    parser.add_argument("--sync-always", action="store_true", help="broker fsyncs every write")
    args = parser.parse_args()
    if args.load == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk, or use --load locust")

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        creds = work / "credentials.json"
        creds.write_text(json.dumps({"admin": "bench-admin", "plants": {"P01": KEY}}))
        with EmbeddedNats(work / "nats", sync_always=args.sync_always, die_with_parent=True) as broker:
            handle = start_gateway(broker.url, creds, args.workers, work / "logs")
            url = handle.url
            try:
                results = {}
                for name, batch, conns in (("batched", args.batch, args.batch_connections),
                                           ("single", 1, args.single_connections)):
                    before = settled_count(broker.url)
                    assert handle.proc is not None
                    gw_pid = handle.proc.pid
                    cpu0 = (tree_cpu(gw_pid), _cpu_seconds(broker.proc.pid))
                    started = time.perf_counter()
                    if args.load == "wrk":
                        r = run_wrk(url, batch, conns, args.duration, work)
                    else:
                        r = run_locust(url, batch, conns, args.duration, args.locust_processes)
                    elapsed = time.perf_counter() - started
                    stored = settled_count(broker.url) - before
                    gw_cpu = tree_cpu(gw_pid) - cpu0[0]
                    nats_cpu = _cpu_seconds(broker.proc.pid) - cpu0[1]
                    per_event_us = 1e6 * (gw_cpu + nats_cpu) / max(stored, 1)
                    r |= {"stored": stored, "events_s": stored / min(elapsed, args.duration + 0.5),
                          "batch": batch, "connections": conns, "gateway_cpu_s": gw_cpu, "nats_cpu_s": nats_cpu,
                          "cpu_us_per_event": per_event_us}
                    results[name] = r
                    print(f"{name:8s} batch={batch:<4d} conns={conns:<3d} requests/s={r['rps']:9.1f} "
                          f"events stored={stored:8d} (~{r['events_s']:9.0f}/s) non-2xx={r['non2xx']:.0f} "
                          f"p50={r['p50_ms']:.1f} ms p99={r['p99_ms']:.1f} ms", flush=True)
                    print(f"{'':8s} CPU: gateway {gw_cpu:.1f} s + broker {nats_cpu:.1f} s = {per_event_us:.0f} us "
                          f"per stored event -> ~{2e6 / per_event_us:,.0f} events/s if both cores were ours",
                          flush=True)
            finally:
                handle.stop()
    b, s = results["batched"], results["single"]
    print(f"\nbatched: {b['rps'] * args.batch:,.0f} events/s acknowledged "
          f"(target >= 20,000); single: {s['rps']:,.0f} requests/s (target >= 2,000)")


if __name__ == "__main__":
    main()
