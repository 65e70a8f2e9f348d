"""End-to-end latency of the live integration layer: edge post → ERP ledger row, in wall seconds.

Starts the real services as processes (broker, ERP twin, gateway, worker), then

1. measures the gateway's batched ingest rate (PubAck'd events per second, batches of ``--batch``
   on ``--clients`` concurrent connections, no worker running so it does not compete for the cores);
2. starts the worker (``--lanes`` lanes; it posts to the ERP in batches) and measures the end-to-end
   capacity: ``--capacity-events`` posted as fast as the gateway takes them, timed from the first
   request until the last ERP ledger row (gateway, broker, worker and ERP all busy at once);
3. drives ``/v2/events`` in batches of ``--latency-batch`` for ``--seconds`` at half the ingest rate
   (the target's load) and at half the end-to-end capacity, reading every posting's time from the
   ERP ledger.

Latency of one event = ERP ledger time (scenario seconds → wall via the run's scaled clock) minus
the wall time its batch was sent. Usage::

    .venv/bin/python bench/bench_live.py --seconds 10
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

import httpx
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from integration.gateway.settings import generate_credentials  # noqa: E402
from live.clock import ScaledClock  # noqa: E402
from live.procs import ServiceSet, python_module  # noqa: E402

SCENARIO = {
    "name": "bench-live",
    "landscape": {
        "erp": {"kind": "legacy", "service": {"mean": "0s", "distribution": "constant"}, "network_latency": 0},
        "items": {"FG-100": {"unit": "EA"}},
        "plants": [{"id": "P01", "schema_version": "v2"}],
    },
}


def events(prefix: str, n: int, t: float) -> list[dict]:
    return [{"txn_id": f"{prefix}-{i}", "flow": "operation_confirmation", "item": "FG-100", "qty": 1.0,
             "unit": "EA", "line": "L01", "t_created": t} for i in range(n)]


async def ingest_rate(url: str, key: str, seconds: float, batch: int, clients: int) -> float:
    """Events per second the gateway accepts (202 after PubAck) with ``clients`` batch posters."""
    accepted = 0
    deadline = time.monotonic() + seconds

    async def client(c: int) -> None:
        nonlocal accepted
        async with httpx.AsyncClient(base_url=url, headers={"X-Api-Key": key}, timeout=30) as http:
            i = 0
            while time.monotonic() < deadline:
                r = await http.post("/v2/events", json=events(f"ING{c}-{i}", batch, 0.0))
                if r.status_code == 202:
                    accepted += batch
                elif r.status_code == 429:
                    await asyncio.sleep(float(r.headers.get("Retry-After", "0.1")))
                else:
                    raise RuntimeError(f"gateway answered {r.status_code}: {r.text[:200]}")
                i += 1

    started = time.monotonic()
    await asyncio.gather(*(client(c) for c in range(clients)))
    return accepted / (time.monotonic() - started)


async def drive(url: str, key: str, rate: float, seconds: float, batch: int, clock: ScaledClock,
                prefix: str = "LAT", total: int | None = None) -> dict[str, float]:
    """Post ``rate`` events/s in batches (or ``total`` events as fast as possible); return txn id →
    wall time its batch was sent."""
    sent: dict[str, float] = {}
    interval = batch / rate
    n_batches = int(seconds / interval) if total is None else -(-total // batch)
    async with httpx.AsyncClient(base_url=url, headers={"X-Api-Key": key}, timeout=60) as http:
        start = time.monotonic()
        tasks = []
        for i in range(n_batches):
            await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
            size = batch if total is None else min(batch, total - i * batch)
            body = events(f"{prefix}-{i}", size, max(0.0, clock.now()))
            t_post = time.time()
            sent.update((e["txn_id"], t_post) for e in body)
            tasks.append(asyncio.create_task(http.post("/v2/events", json=body)))
        answers = await asyncio.gather(*tasks)
    bad = [r.status_code for r in answers if r.status_code != 202]
    if bad:
        raise RuntimeError(f"{len(bad)} batches refused, e.g. HTTP {bad[0]}")
    return sent


def ledger_times(db: Path, prefix: str) -> dict[str, list[float]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT txn_id, t_posted FROM ledger WHERE txn_id LIKE ?", (prefix + "%",)).fetchall()
    out: dict[str, list[float]] = {}
    for txn, t in rows:
        out.setdefault(txn, []).append(t)
    return out


async def purge_events(nats_url: str) -> None:
    """Drop the ingest phase's events so they do not load the latency phases."""
    import nats

    nc = await nats.connect(nats_url)
    await nc.jetstream().purge_stream("EVENTS")
    await nc.close()


def wait_posted(db: Path, prefix: str, n: int, timeout: float) -> dict[str, list[float]]:
    deadline = time.monotonic() + timeout
    while True:
        posted = ledger_times(db, prefix)
        if len(posted) >= n or time.monotonic() > deadline:
            return posted
        time.sleep(0.1)


def latency_phase(name: str, gateway: str, key: str, rate: float, seconds: float, batch: int,
                  clock: ScaledClock, ledger: Path) -> dict:
    """Drive ``rate`` events/s for ``seconds``; latency figures of every event the ERP posted."""
    sent = asyncio.run(drive(gateway, key, rate, seconds, batch, clock, prefix=name))
    posted = wait_posted(ledger, f"{name}-", len(sent), timeout=300)
    lat = np.array([clock.to_wall(min(posted[t])) - sent[t] for t in sent if t in posted])
    return {
        "rate_events_per_s": round(rate, 1), "seconds": seconds, "batch": batch, "events": len(sent),
        "posted": len(lat), "duplicates": sum(1 for v in posted.values() if len(v) > 1),
        "p50_s": round(float(np.percentile(lat, 50)), 4) if lat.size else None,
        "p99_s": round(float(np.percentile(lat, 99)), 4) if lat.size else None,
        "max_s": round(float(lat.max()), 4) if lat.size else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="wall seconds of each latency phase")
    ap.add_argument("--ingest-seconds", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=500, help="events per request when measuring ingest")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--latency-batch", type=int, default=50, help="events per request in the latency phases")
    ap.add_argument("--capacity-events", type=int, default=60000, help="events used to measure the e2e rate")
    ap.add_argument("--lanes", type=int, default=2, help="worker lanes (fewer lanes, larger ERP batches)")
    ap.add_argument("--rates", default="", help="extra latency phases at these events/s, e.g. 8000,10000")
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        run_dir = Path(tmp)
        state = run_dir / "state"
        state.mkdir()
        ledger = state / "erp-legacy.sqlite"
        scenario = run_dir / "scenario.yaml"
        scenario.write_text(yaml.safe_dump(SCENARIO))
        creds = generate_credentials(["P01"])
        (state / "credentials.json").write_text(json.dumps(creds))
        key = creds["plants"]["P01"]
        clock = ScaledClock(time.time(), args.speed)
        cargs = ["--epoch", repr(clock.epoch), "--speed", repr(clock.speed)]
        mod = "synctwin.commands.live_services"
        with ServiceSet(run_dir / "logs") as services:
            services.start_many({
                "broker": python_module(mod, "broker", "--data-dir", str(state / "nats")),
                "erp-legacy": python_module(mod, "erp", "--kind", "legacy", "--scenario", str(scenario), "--db",
                                            str(ledger), *cargs),
            })
            nats_url, erp_url = services["broker"].url, services["erp-legacy"].url
            gateway = services.start("gateway", python_module(
                mod, "gateway", "--nats", nats_url, "--credentials", str(state / "credentials.json"),
                "--rate-limit", "1000000/s", *cargs)).url
            # 1. The gateway alone: batched ingest, acknowledged by JetStream.
            ingest = asyncio.run(ingest_rate(gateway, key, args.ingest_seconds, args.batch, args.clients))
            print(f"gateway batched ingest: {ingest:,.0f} events/s (batches of {args.batch}, {args.clients} clients)")
            asyncio.run(purge_events(nats_url))
            services.start("worker", python_module(
                "synctwin.commands.live", "worker", "--nats", nats_url, "--scenario", str(scenario), "--erp",
                f"legacy={erp_url}", "--run-dir", str(run_dir), "--lanes", str(args.lanes), *cargs))
            # 2. End-to-end capacity: how fast the worker turns a backlog into ERP postings.
            t0 = time.monotonic()
            asyncio.run(drive(gateway, key, 1e9, 1.0, 500, clock, prefix="CAP", total=args.capacity_events))
            wait_posted(ledger, "CAP-", args.capacity_events, timeout=300)
            capacity = args.capacity_events / (time.monotonic() - t0)
            print(f"end-to-end capacity (gateway → JetStream → worker → ERP): {capacity:,.0f} events/s")
            # 3. Latency at half the ingest rate (the target's load), then at half the e2e capacity.
            phases = {}
            extra = [(f"R{r}", float(r)) for r in filter(None, args.rates.split(","))]
            for name, rate in (("HALFINGEST", ingest / 2), ("HALFCAP", capacity / 2), *extra):
                phases[name] = latency_phase(name, gateway, key, rate, args.seconds, args.latency_batch, clock, ledger)
                print(name, json.dumps(phases[name]))
    result = {"ingest_events_per_s": round(ingest, 1), "e2e_capacity_events_per_s": round(capacity, 1),
              "speed": args.speed, "lanes": args.lanes, "half_ingest": phases["HALFINGEST"],
              "half_capacity": phases["HALFCAP"], **{k: v for k, v in phases.items() if k.startswith("R")}}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
