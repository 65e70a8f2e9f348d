"""Integration worker throughput alone: a backlog in JetStream drained into the ERP twin, configurations side by side.

Starts the broker and the ERP twin as processes, stores ``--events`` canonical events in the EVENTS
stream (published directly, no gateway), then for each configuration (``BATCHxLANES``) and repeat, in
interleaved order, starts a ``synctwin worker`` on its own durable consumer and run folder and times
it from READY until the ERP ledger holds the whole backlog once more. CPU per event is read from
``/proc`` for the worker, the broker and the ERP twin. A configuration ``BATCHxLANES@DIR`` runs the
worker from another source tree (e.g. ``git worktree add /tmp/before HEAD~1``): an A/B of a change
in one run, on the same machine state. Usage::

    .venv/bin/python bench/bench_worker.py --events 100000 --configs 500x2,1000x2,2000x2 --repeats 2
    .venv/bin/python bench/bench_worker.py --configs 1000x2,1000x2@/tmp/before --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import nats
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_live import SCENARIO, cpu_per_event, cpu_seconds  # noqa: E402

from integration.broker import ensure_streams, event_subject  # noqa: E402
from integration.gateway.ingest import Message  # noqa: E402
from integration.gateway.jspub import BatchPublisher  # noqa: E402
from live.procs import ServiceSet, python_module  # noqa: E402

_EVENT = ('{"txn_id":"W-%d","correlation_id":"c-%d","flow":"operation_confirmation","plant":"P01","line":"L01",'
          '"item":"FG-100","lot":"LOT-%d","qty":1.0,"unit":"EA","schema_version":"v2","t_created":1.0}')


async def store_backlog(url: str, n: int) -> None:
    """Publish ``n`` canonical events (PubAck'd) the way the gateway does."""
    nc = await nats.connect(url)
    await ensure_streams(nc.jetstream())
    publisher = BatchPublisher(nc)
    for start in range(0, n, 1000):
        msgs = [Message(event_subject("P01", "operation_confirmation", f"W-{i}"), f"W-{i}", f"c-{i}",
                        (_EVENT % (i, i, i % 97)).encode()) for i in range(start, min(n, start + 1000))]
        acks = await publisher.publish(msgs, 30)
        if acks.stored != len(msgs):
            raise RuntimeError(f"backlog not stored: {acks.errors}")
    await nc.close()


def worker_command(tree: str, args: list[str]) -> list[str]:
    """``synctwin worker ARGS`` from this checkout, or from the source tree ``tree``."""
    if not tree:
        return python_module("synctwin.commands.live", *args)
    boot = (f"import runpy, sys; sys.path.insert(0, {tree!r}); "
            "runpy.run_module('synctwin.commands.live', run_name='__main__', alter_sys=True)")
    return [sys.executable, "-c", boot, *args]


def ledger_rows(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT max(id) FROM ledger").fetchone()[0] or 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--configs", default="500x2,1000x2,2000x2", help="comma-separated BATCHxLANES")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    configs = []
    for text in args.configs.split(","):
        shape, _, tree = text.partition("@")
        batch, lanes = (int(x) for x in shape.split("x"))
        configs.append((batch, lanes, tree))

    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        root = Path(tmp)
        (root / "state").mkdir()
        scenario = root / "scenario.yaml"
        scenario.write_text(yaml.safe_dump(SCENARIO))
        ledger = root / "state" / "erp.sqlite"
        cargs = ["--epoch", repr(time.time()), "--speed", "60"]
        mod = "synctwin.commands.live_services"
        with ServiceSet(root / "logs") as services:
            services.start_many({
                "broker": python_module(mod, "broker", "--data-dir", str(root / "state" / "nats")),
                "erp": python_module(mod, "erp", "--kind", "legacy", "--scenario", str(scenario), "--db", str(ledger),
                                     *cargs),
            })
            asyncio.run(store_backlog(services["broker"].url, args.events))
            for repeat in range(args.repeats):
                for n, (batch, lanes, tree) in enumerate(configs):
                    label = f"{batch}x{lanes}" + (f"@{tree}" if tree else "")
                    name = f"w{repeat}-{n}"
                    before = ledger_rows(ledger)
                    services.start(name, worker_command(tree, [
                        "worker", "--nats", services["broker"].url, "--scenario", str(scenario), "--erp",
                        f"legacy={services['erp'].url}", "--run-dir", str(root / name), "--lanes", str(lanes),
                        "--batch", str(batch), "--consumer", name, *cargs]))
                    t0, cpu0 = time.monotonic(), cpu_seconds(services)
                    deadline = t0 + 600
                    while ledger_rows(ledger) < before + args.events and time.monotonic() < deadline:
                        time.sleep(0.05)
                    wall = time.monotonic() - t0
                    cpu1 = cpu_seconds(services)
                    services[name].stop()
                    per_event = cpu_per_event(cpu0, cpu1, args.events)
                    row = {"config": label, "repeat": repeat, "events_per_s": round(args.events / wall),
                           "worker_us": per_event[name], "broker_us": per_event["broker"], "erp_us": per_event["erp"]}
                    results.append(row)
                    print(json.dumps(row), flush=True)
    print("\n| config (batch x lanes) | events/s | worker µs/event | broker µs/event | ERP µs/event |")
    print("|---|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['config']} (run {r['repeat'] + 1}) | {r['events_per_s']:,} | {r['worker_us']} | "
              f"{r['broker_us']} | {r['erp_us']} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
