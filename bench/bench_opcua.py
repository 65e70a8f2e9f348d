"""Plant OPC UA servers under load: value updates delivered to subscribers per second, and their lag.

Starts ``--servers`` plant servers (each a machine bank of ``--machines`` machines x 7 variables,
publishing one pass per ``--tick`` wall seconds, every variable written each pass; passes of the servers
of one process are staggered over the tick) in processes of ``--servers-per-process`` servers, and
one subscription per server (all variables, ``--publishing-ms`` publishing interval, queue size 1,
trigger StatusValueTimestamp so every write is a notification) in processes of
``--clients-per-process`` subscriptions. Each client measures notifications received per second and
notification lag = receive time - the value's SourceTimestamp (both wall clocks of this machine).
Prints a summary and, with ``--results``, appends the command and the JSON to a Markdown file.

Variants: ``--uvloop`` runs every process on uvloop; ``--client-path bulk`` uses
:class:`live.opcua_bulk.BulkSubscription` (one handler call per PublishResponse) instead of asyncua's
per-notification handler; ``--write-path asyncua`` writes through ``AddressSpace.write_attribute_value``
one value at a time (the path before :mod:`live.opcua_batch`).

    .venv/bin/python bench/bench_opcua.py --servers 4 --machines 360 --duration 20 --uvloop --client-path bulk
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(coro, use_uvloop: bool):
    """Run ``coro`` on a fresh asyncio or uvloop event loop."""
    if use_uvloop:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)


# ------------------------------------------------------------------------------------------ server
async def serve(plants: list[str], machines: int, tick: float, secure: bool, run_dir: Path, write_path: str) -> None:
    from asyncua import ua

    from kernel.clock import ScaledClock
    from live.opcua_server import PlantOpcUaServer, access_for_run
    from twins.machines import MachineBank

    class AsyncuaWrites(PlantOpcUaServer):
        """The write path before batching: one awaited write_attribute_value per value."""

        async def publish(self, step, force: bool = False) -> int:
            aspace = self._server.iserver.aspace
            written = 0
            for nodeid, dv in self._changes(force):
                await aspace.write_attribute_value(nodeid, ua.AttributeIds.Value, dv)
                written += 1
                if written % 500 == 0:
                    await asyncio.sleep(0)
            self.writes += written
            return written

    cls = AsyncuaWrites if write_path == "asyncua" else PlantOpcUaServer
    servers = []
    for plant in plants:
        bank = MachineBank(machines, 1.0, 0.02, 8 * 3600.0, 1200.0, np.random.default_rng(1), machines_per_line=20)
        server = cls(plant, bank, 20, ScaledClock(time.time(), 60.0), access_for_run(run_dir, not secure))
        servers.append(server)
        print(f"READY {plant} {await server.start()}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    busy = [0.0] * len(servers)
    began_at, cpu0 = time.monotonic(), time.process_time()

    async def pace(k: int, server: PlantOpcUaServer) -> None:
        next_at = began_at + tick * k / len(servers)  # stagger the passes of co-hosted servers
        while not stop.is_set():
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            began = time.monotonic()
            server.bank.advance(server.bank.t + 60.0)
            await server.publish(None, force=True)  # every variable, every pass
            busy[k] += time.monotonic() - began
            next_at += tick

    tasks = [asyncio.create_task(pace(k, s)) for k, s in enumerate(servers)]
    await stop.wait()
    elapsed, cpu = time.monotonic() - began_at, time.process_time() - cpu0
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    writes = sum(s.writes for s in servers)
    print(json.dumps({"writes": writes, "busy_share": [b / elapsed for b in busy], "cpu_share": cpu / elapsed}))
    for server in servers:
        await server.stop()


# ------------------------------------------------------------------------------------------ client
async def subscribe_one(
    url: str, plant: str, machines: int, secure: bool, run_dir: Path, path: str, publishing_ms: float, sink
):
    from asyncua import Client, ua
    from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

    from live.opcua_bulk import create_bulk_subscription
    from live.opcua_server import VARIABLES, access_for_run, ensure_certificate, machine_path, namespace_uri

    client = Client(url, timeout=30, watchdog_intervall=10.0)
    if secure:
        access = access_for_run(run_dir, False)
        client.application_uri = f"urn:synctwin:bench:{plant}"
        cert, key = await ensure_certificate(access.pki_dir, f"bench-{plant}", client.application_uri, False)
        await client.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key))
        client.set_user(access.user)
        client.set_password(access.password)
    await client.connect()
    idx = await client.get_namespace_index(namespace_uri(plant))
    ids = {}
    for i in range(machines):
        line, machine = machine_path(i, 20)
        for name, _, _ in VARIABLES:
            ids[(i, name)] = ua.NodeId(f"{plant}.{line}.{machine}.{name}", idx)
    # StatusValueTimestamp: every write is an update, even when the value itself repeats
    every_write = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)
    if path == "bulk":

        class Bulk:
            def datachange_batch(self, items):
                sink.batch(items)

        sub = await create_bulk_subscription(client, publishing_ms, Bulk())
        await sub.subscribe_keyed(ids, every_write, queuesize=1)
    else:

        class Handler:
            def datachange_notification(self, node, val, data):
                sink.one(data.monitored_item.Value)

        sub = await client.create_subscription(publishing_ms, Handler())
        nodes = [client.get_node(n) for n in ids.values()]
        for start in range(0, len(nodes), 1000):
            await sub._subscribe(nodes[start : start + 1000], ua.AttributeIds.Value, every_write, queuesize=1)
    return client, len(ids)


class Sink:
    """Counts notifications and their lags while ``counting``."""

    def __init__(self):
        self.counting, self.lags = False, []

    def one(self, dv) -> None:
        if self.counting:
            self.lags.append(time.time() - dv.SourceTimestamp.timestamp())

    def batch(self, items) -> None:
        if self.counting:
            now = time.time()
            self.lags.extend(now - dv.SourceTimestamp.timestamp() for _, dv in items)


async def subscribe(targets: list[tuple[str, str]], machines: int, args: argparse.Namespace) -> None:
    sink = Sink()
    clients = []
    variables = 0
    for plant, url in targets:
        client, n = await subscribe_one(
            url, plant, machines, args.secure, Path(args.run_dir), args.client_path, args.publishing_ms, sink
        )
        clients.append(client)
        variables += n
    await asyncio.sleep(args.warmup)
    cpu0 = time.process_time()
    sink.counting = True
    await asyncio.sleep(args.seconds)
    sink.counting = False
    cpu = time.process_time() - cpu0
    for client in clients:
        await client.disconnect()
    lag = np.array(sink.lags) if sink.lags else np.array([np.nan])
    print(
        json.dumps(
            {
                "notifications": len(sink.lags),
                "per_s": len(sink.lags) / args.seconds,
                "variables": variables,
                "lag_p50": float(np.percentile(lag, 50)),
                "lag_p99": float(np.percentile(lag, 99)),
                "lag_max": float(lag.max()),
                "cpu_share": cpu / args.seconds,
            }
        ),
        flush=True,
    )


# ------------------------------------------------------------------------------------------ driver
def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def drive(args: argparse.Namespace) -> dict:
    load_before = os.getloadavg()[0]  # other work on the box competes for the same 2 cores
    common = ["--machines", str(args.machines), "--run-dir", str(args.run_dir)]
    common += ["--secure"] if args.secure else []
    common += ["--uvloop"] if args.uvloop else []
    plants = [f"B{s + 1:02d}" for s in range(args.servers)]
    servers = [
        subprocess.Popen(
            [sys.executable, __file__, "server", "--plants", ",".join(group), "--tick", str(args.tick)]
            + ["--write-path", args.write_path, *common],
            stdout=subprocess.PIPE,
            text=True,
        )
        for group in _chunks(plants, args.servers_per_process)
    ]
    targets = []
    for proc in servers:
        for _ in range(min(args.servers_per_process, args.servers - len(targets))):
            line = proc.stdout.readline()
            if not line.startswith("READY "):
                raise SystemExit(f"a server failed to start: {line!r}")
            targets.append(tuple(line.split()[1:3]))
    clients = [
        subprocess.Popen(
            [sys.executable, __file__, "client", "--targets", ",".join(f"{p}={u}" for p, u in group)]
            + ["--warmup", str(args.warmup), "--seconds", str(args.duration)]
            + ["--client-path", args.client_path, "--publishing-ms", str(args.publishing_ms), *common],
            stdout=subprocess.PIPE,
            text=True,
        )
        for group in _chunks(targets, args.clients_per_process)
    ]
    total = args.warmup + args.duration
    client_results = [json.loads(c.communicate(timeout=total + 300)[0].strip().splitlines()[-1]) for c in clients]
    for proc in servers:
        proc.send_signal(signal.SIGTERM)
    server_results = [json.loads(p.communicate(timeout=60)[0].strip().splitlines()[-1]) for p in servers]
    variables = sum(r["variables"] for r in client_results)
    return {
        "servers": args.servers,
        "servers_per_process": args.servers_per_process,
        "clients_per_process": args.clients_per_process,
        "uvloop": args.uvloop,
        "write_path": args.write_path,
        "client_path": args.client_path,
        "publishing_ms": args.publishing_ms,
        "variables": variables,
        "tick_s": args.tick,
        "secure": args.secure,
        "written_per_s": variables / args.tick,
        "delivered_per_s": round(sum(r["per_s"] for r in client_results), 1),
        "lag_p50_s": round(max(r["lag_p50"] for r in client_results), 3),
        "lag_p99_s": round(max(r["lag_p99"] for r in client_results), 3),
        "lag_max_s": round(max(r["lag_max"] for r in client_results), 3),
        "server_busy_share": [round(b, 3) for r in server_results for b in r["busy_share"]],
        "server_cpu_share": [round(r["cpu_share"], 3) for r in server_results],
        "client_cpu_share": [round(r["cpu_share"], 3) for r in client_results],
        "load_avg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
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
    parser.add_argument("--uvloop", action="store_true", help="run every process on uvloop")
    parser.add_argument("--servers-per-process", type=int, default=1)
    parser.add_argument("--clients-per-process", type=int, default=1)
    parser.add_argument("--publishing-ms", type=float, default=200.0)
    parser.add_argument("--write-path", choices=["batch", "asyncua"], default="batch")
    parser.add_argument("--client-path", choices=["bulk", "asyncua"], default="asyncua")
    parser.add_argument("--run-dir", default="/tmp/bench-opcua")
    parser.add_argument("--results", help="append the command and its JSON result to this Markdown file")
    parser.add_argument("--plants", default="B01", help="(server role) comma-separated plant ids")
    parser.add_argument("--targets", help="(client role) comma-separated plant=url")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    if args.role == "server":
        plants = args.plants.split(",")
        run(serve(plants, args.machines, args.tick, args.secure, Path(args.run_dir), args.write_path), args.uvloop)
    elif args.role == "client":
        targets = [tuple(t.split("=", 1)) for t in args.targets.split(",")]
        run(subscribe(targets, args.machines, args), args.uvloop)
    else:
        result = drive(args)
        print(json.dumps(result, indent=2))
        if args.results:
            with open(args.results, "a") as out:
                out.write(f"\n- {datetime.now(UTC):%Y-%m-%d %H:%M} `{' '.join(sys.argv)}`: {json.dumps(result)}\n")


if __name__ == "__main__":
    main()
