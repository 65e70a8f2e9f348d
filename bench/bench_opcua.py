"""Plant OPC UA servers under load: value updates delivered to subscribers per second, and their lag.

Starts ``--servers`` plant servers as separate processes (each a machine bank of ``--machines`` machines
x 7 variables, publishing one pass per ``--tick`` wall seconds, every variable written each pass) and
one subscribing client process per server (all variables, 200 ms publishing interval). Each client
measures notifications received per second and notification lag = receive time - the value's
SourceTimestamp (both wall clocks of this machine). Prints a summary and, with ``--results``, appends
a Markdown section.

    .venv/bin/python bench/bench_opcua.py --servers 4 --machines 360 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# ------------------------------------------------------------------------------------------ server
async def serve(plant: str, machines: int, tick: float, secure: bool, run_dir: Path) -> None:
    from live.clock import ScaledClock
    from live.opcua_server import PlantOpcUaServer, access_for_run
    from twins.machines import MachineBank

    bank = MachineBank(machines, 1.0, 0.02, 8 * 3600.0, 1200.0, np.random.default_rng(1), machines_per_line=20)
    clock = ScaledClock(time.time(), 60.0)
    server = PlantOpcUaServer(plant, bank, 20, clock, access_for_run(run_dir, not secure))
    url = await server.start()
    print(f"READY {url}", flush=True)
    passes, busy, began_at = 0, 0.0, time.monotonic()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        began = time.monotonic()
        bank.advance(bank.t + 60.0)
        await server.publish(None, force=True)  # every variable, every pass
        spent = time.monotonic() - began
        passes, busy = passes + 1, busy + spent
        await asyncio.sleep(max(0.0, tick - spent))
    elapsed = time.monotonic() - began_at
    print(json.dumps({"writes": server.writes, "passes": passes, "busy_share": busy / elapsed}), flush=True)
    await server.stop()


# ------------------------------------------------------------------------------------------ client
async def subscribe(
    url: str, plant: str, machines: int, warmup: float, seconds: float, secure: bool, run_dir: Path
) -> None:
    from asyncua import Client, ua
    from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

    from live.opcua_server import VARIABLES, access_for_run, ensure_certificate, machine_path, namespace_uri

    lags: list[float] = []
    counting = False

    class Handler:
        def datachange_notification(self, node, val, data):
            if counting:
                stamp = data.monitored_item.Value.SourceTimestamp
                lags.append(time.time() - stamp.timestamp())

    client = Client(url, timeout=30, watchdog_intervall=10.0)
    if secure:
        access = access_for_run(run_dir, False)
        client.application_uri = f"urn:synctwin:bench:{plant}"
        cert, key = await ensure_certificate(access.pki_dir, f"bench-{plant}", client.application_uri, False)
        await client.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key))
        client.set_user(access.user)
        client.set_password(access.password)
    async with client:
        idx = await client.get_namespace_index(namespace_uri(plant))
        nodes = []
        for i in range(machines):
            line, machine = machine_path(i, 20)
            nodes += [client.get_node(ua.NodeId(f"{plant}.{line}.{machine}.{name}", idx)) for name, _, _ in VARIABLES]
        sub = await client.create_subscription(200, Handler())
        # StatusValueTimestamp: every write is an update, even when the value itself repeats
        every_write = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)
        for start in range(0, len(nodes), 1000):
            await sub._subscribe(nodes[start : start + 1000], ua.AttributeIds.Value, every_write, queuesize=1)
        await asyncio.sleep(warmup)
        counting = True
        await asyncio.sleep(seconds)
        counting = False
    lag = np.array(lags) if lags else np.array([np.nan])
    print(
        json.dumps(
            {
                "notifications": len(lags),
                "per_s": len(lags) / seconds,
                "variables": len(nodes),
                "lag_p50": float(np.percentile(lag, 50)),
                "lag_p99": float(np.percentile(lag, 99)),
                "lag_max": float(lag.max()),
            }
        ),
        flush=True,
    )


# ------------------------------------------------------------------------------------------ driver
def drive(args: argparse.Namespace) -> dict:
    run_dir = Path(args.run_dir)
    common = ["--machines", str(args.machines), "--run-dir", str(run_dir)] + (["--secure"] if args.secure else [])
    total = args.warmup + args.duration
    servers = []
    for s in range(args.servers):
        servers.append(
            subprocess.Popen(
                [sys.executable, __file__, "server", "--plant", f"B{s + 1:02d}", "--tick", str(args.tick), *common],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    urls = []
    for proc in servers:
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise SystemExit(f"a server failed to start: {line!r}")
        urls.append(line.split()[1])
    clients = [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "client",
                "--url",
                url,
                "--plant",
                f"B{s + 1:02d}",
                "--warmup",
                str(args.warmup),
                "--seconds",
                str(args.duration),
                *common,
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for s, url in enumerate(urls)
    ]
    client_results = [json.loads(c.communicate(timeout=total + 300)[0].strip().splitlines()[-1]) for c in clients]
    for proc in servers:
        proc.send_signal(signal.SIGTERM)
    server_results = [json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1]) for p in servers]
    variables = sum(r["variables"] for r in client_results)
    return {
        "servers": args.servers,
        "variables": variables,
        "tick_s": args.tick,
        "secure": args.secure,
        "written_per_s": variables / args.tick,
        "delivered_per_s": sum(r["per_s"] for r in client_results),
        "lag_p50_s": max(r["lag_p50"] for r in client_results),
        "lag_p99_s": max(r["lag_p99"] for r in client_results),
        "lag_max_s": max(r["lag_max"] for r in client_results),
        "server_busy_share": [round(r["busy_share"], 3) for r in server_results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("role", nargs="?", default="drive", choices=["drive", "server", "client"])
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--machines", type=int, default=360, help="machines per server (7 variables each)")
    parser.add_argument("--tick", type=float, default=1.0, help="wall seconds between publishing passes")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--secure", action="store_true", help="Basic256Sha256 SignAndEncrypt + user")
    parser.add_argument("--run-dir", default="/tmp/bench-opcua")
    parser.add_argument("--results", help="append a Markdown section to this file")
    parser.add_argument("--plant", default="B01")
    parser.add_argument("--url")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    if args.role == "server":
        asyncio.run(serve(args.plant, args.machines, args.tick, args.secure, Path(args.run_dir)))
    elif args.role == "client":
        asyncio.run(
            subscribe(args.url, args.plant, args.machines, args.warmup, args.seconds, args.secure, Path(args.run_dir))
        )
    else:
        result = drive(args)
        print(json.dumps(result, indent=2))
        if args.results:
            with open(args.results, "a") as out:
                out.write(f"\n- {datetime.now(UTC):%Y-%m-%d %H:%M} `{' '.join(sys.argv)}`: {json.dumps(result)}\n")


if __name__ == "__main__":
    main()
