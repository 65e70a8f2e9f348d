"""End-to-end latency of the live integration layer: edge post → ERP ledger row, in wall seconds.

Starts the real services as processes (broker, ERP twin, gateway, worker), then

1. measures the gateway's batched ingest rate (PubAck'd events per second, batches of ``--batch``
   on ``--clients`` concurrent connections, no worker running so it does not compete for the cores);
2. starts the worker (``--lanes`` lanes; it posts to the ERP in batches) and measures the end-to-end
   capacity: ``--capacity-events`` posted as fast as the gateway takes them, timed from the first
   request until the last ERP ledger row (gateway, broker, worker and ERP all busy at once);
3. drives ``/v2/events`` in batches of ``--latency-batch`` (default ``--batch``) for ``--seconds``
   at half the ingest rate (the target's load) and at half the end-to-end capacity, reading every
   posting's time from the ERP ledger.

Latency of one event = ERP ledger time (scenario seconds → wall via the run's scaled clock) minus
the wall time its batch was sent. Usage::

    .venv/bin/python bench/bench_live.py --seconds 10
    .venv/bin/python bench/bench_live.py --brokers 3 --gateways 2 --workers 2   # the scaled-out layer

``--compare-brokers 1,3 --rounds 3`` measures only the end-to-end capacity, of one broker and of the
3-node cluster (streams replicated three times) in alternating order, each on a fresh layer with the
same ``--gateways``/``--workers``, and prints the cluster's cost against one broker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from integration.gateway.settings import generate_credentials  # noqa: E402
from integration.http1 import Http1Connection, Response, retry_after_seconds  # noqa: E402
from kernel.clock import ScaledClock  # noqa: E402
from live.procs import ServiceSet  # noqa: E402
from live.stack_plan import Scale, ServiceCommands  # noqa: E402

SCENARIO = {
    "name": "bench-live",
    "landscape": {
        "erp": {"kind": "legacy", "service": {"mean": "0s", "distribution": "constant"}, "network_latency": 0},
        "items": {"FG-100": {"unit": "EA"}},
        "plants": [{"id": "P01", "schema_version": "v2"}],
    },
}


def events(prefix: str, n: int, t: float) -> bytes:
    """A ``/v2/events`` body of ``n`` confirmations, encoded from a template: the load generator shares
    the two cores with the layer it measures, so it spends as little CPU as it can."""
    return ("[" + ",".join(_EVENT % (prefix, i, t) for i in range(n)) + "]").encode()


_EVENT = ('{"txn_id":"%s-%d","flow":"operation_confirmation","item":"FG-100","qty":1.0,"unit":"EA",'
          '"line":"L01","t_created":%r}')


class Poster:
    """POSTs to the gateway over a pool of keep-alive connections (one per request in flight)."""

    def __init__(self, url: str, key: str):
        parsed = urlsplit(url)
        self.address, self.headers = (parsed.hostname, parsed.port), {"X-Api-Key": key}
        self.idle: list[Http1Connection] = []

    async def post(self, body: bytes) -> Response:
        conn = self.idle.pop() if self.idle else Http1Connection(*self.address, self.headers)
        response = await conn.request("POST", "/v2/events", body)
        self.idle.append(conn)
        return response

    def close(self) -> None:
        for conn in self.idle:
            conn.close()


async def ingest_rate(url: str, key: str, seconds: float, batch: int, clients: int) -> float:
    """Events per second the gateway accepts (202 after PubAck) with ``clients`` batch posters."""
    accepted = 0
    deadline = time.monotonic() + seconds
    poster = Poster(url, key)

    async def client(c: int) -> None:
        nonlocal accepted
        i = 0
        while time.monotonic() < deadline:
            r = await poster.post(events(f"ING{c}-{i}", batch, 0.0))
            if r.status == 202:
                accepted += batch
            elif r.status == 429:
                await asyncio.sleep(retry_after_seconds(r.headers.get("retry-after"), 0.1))
            else:
                raise RuntimeError(f"gateway answered {r.status}: {r.body[:200]!r}")
            i += 1

    started = time.monotonic()
    await asyncio.gather(*(client(c) for c in range(clients)))
    poster.close()
    return accepted / (time.monotonic() - started)


async def drive(url: str, key: str, rate: float, seconds: float, batch: int, clock: ScaledClock,
                prefix: str = "LAT", total: int | None = None) -> dict[str, float]:
    """Post ``rate`` events/s in batches (or ``total`` events as fast as possible); return txn id →
    wall time its batch was sent. Bodies are encoded before the clock starts (``t_created`` is the
    batch's planned send time), so the load generator's share of the two cores stays small."""
    sent: dict[str, float] = {}
    interval = batch / rate
    n_batches = int(seconds / interval) if total is None else -(-total // batch)
    sizes = [batch if total is None else min(batch, total - i * batch) for i in range(n_batches)]
    start = time.monotonic() + 0.5
    start_wall = time.time() + (start - time.monotonic())
    bodies = [events(f"{prefix}-{i}", size, max(0.0, clock.to_scenario(start_wall + i * interval)))
              for i, size in enumerate(sizes)]
    poster = Poster(url, key)
    tasks = []
    await asyncio.sleep(max(0.0, start - time.monotonic()))
    for i, (size, body) in enumerate(zip(sizes, bodies, strict=True)):
        await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
        t_post = time.time()
        sent.update((f"{prefix}-{i}-{j}", t_post) for j in range(size))
        tasks.append(asyncio.create_task(poster.post(body)))
    answers = await asyncio.gather(*tasks)
    poster.close()
    bad = [r.status for r in answers if r.status != 202]
    if bad:
        raise RuntimeError(f"{len(bad)} batches refused, e.g. HTTP {bad[0]}")
    return sent


def cpu_seconds(services: ServiceSet) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each service and its children, and by this
    process (the load generator)."""
    used = {"load generator": time.process_time()}
    for service in services:
        if service.pid is None:
            continue
        try:
            proc = psutil.Process(service.pid)
            procs = [proc, *proc.children(recursive=True)]
            used[service.name] = sum(sum(p.cpu_times()[:2]) for p in procs)
        except psutil.NoSuchProcess:
            continue
    return used


def cpu_per_event(before: dict[str, float], after: dict[str, float], events: int) -> dict[str, float]:
    """Microseconds of CPU per event each process spent between two ``cpu_seconds`` snapshots."""
    return {name: round((after[name] - before.get(name, 0.0)) / events * 1e6, 1) for name in after}


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

    from integration.broker import nats_servers

    nc = await nats.connect(nats_servers(nats_url))
    await nc.jetstream().purge_stream("EVENTS")
    await nc.close()


def wait_posted(db: Path, prefix: str, n: int, timeout: float) -> dict[str, list[float]]:
    """Poll (an index range count, cheap beside the layer under test) until ``n`` postings whose
    id starts with ``prefix`` are in the ledger, then read their times."""
    deadline = time.monotonic() + timeout
    with sqlite3.connect(db) as conn:
        while time.monotonic() < deadline:
            (count,) = conn.execute("SELECT count(*) FROM ledger WHERE txn_id >= ? AND txn_id < ?",
                                    (prefix, prefix + "\uffff")).fetchone()
            if count >= n:
                break
            time.sleep(0.2)
    return ledger_times(db, prefix)


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


class Layer:
    """The integration layer as the live stack starts it (:class:`live.stack_plan.ServiceCommands`): broker
    node(s) and ERP twin, then the gateway, then (``start_workers``) the workers, in ``run_dir``."""

    def __init__(self, services: ServiceSet, run_dir: Path, scale: Scale, plants: list[str], clock: ScaledClock,
                 lanes: int):
        self.services, self.scale, self.lanes = services, scale, lanes
        state = run_dir / "state"
        state.mkdir(parents=True, exist_ok=True)
        self.ledger = state / "erp-legacy.sqlite"
        scenario = run_dir / "scenario.yaml"
        scenario.write_text(yaml.safe_dump({**SCENARIO, "landscape": {
            **SCENARIO["landscape"], "plants": [{"id": p, "schema_version": "v2"} for p in plants]}}))
        creds = generate_credentials(plants)
        (state / "credentials.json").write_text(json.dumps(creds))
        self.keys: dict[str, str] = creds["plants"]
        self.plan = ServiceCommands(scenario, run_dir, state / "credentials.json", ("legacy",), self.keys,
                                    clock.epoch, clock.speed, scale=scale)
        self.urls: dict[str, str] = {}
        self._start([*scale.broker_names, "erp-legacy"])
        self.urls["broker"] = scale.broker_url(self.urls)
        self._start(["gateway"], "--rate-limit", "1000000/s")

    def _start(self, names: list[str], *extra: str) -> None:
        started = self.services.start_many({n: [*self.plan.command(n, self.urls), *extra] for n in names})
        self.urls.update({n: s.url for n, s in started.items()})

    def start_workers(self) -> None:
        self._start(self.scale.worker_names, "--lanes", str(self.lanes))


async def drive_plants(gateway: str, keys: dict[str, str], total: int, clock: ScaledClock) -> dict[str, float]:
    """``total`` events as fast as the gateway takes them, split over the plants (``CAP-<plant>-…``)."""
    each = -(-total // len(keys))
    parts = await asyncio.gather(*(drive(gateway, key, 1e9, 1.0, 500, clock, prefix=f"CAP-{plant}", total=each)
                                   for plant, key in keys.items()))
    return {k: v for part in parts for k, v in part.items()}


def capacity_run(brokers: int, args: argparse.Namespace) -> dict:
    """One fresh layer with ``brokers`` node(s): end-to-end capacity and CPU per event."""
    plants = [f"P{i + 1:02d}" for i in range(max(args.plants, args.workers))]
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp, ServiceSet(Path(tmp) / "logs") as services:
        clock = ScaledClock(time.time(), args.speed)
        layer = Layer(services, Path(tmp), Scale.plan(brokers, args.gateways, args.workers, len(plants)), plants,
                      clock, args.lanes)
        layer.start_workers()
        cpu0 = cpu_seconds(services)
        sent = asyncio.run(drive_plants(layer.urls["gateway"], layer.keys, args.capacity_events, clock))
        posted = wait_posted(layer.ledger, "CAP-", len(sent), timeout=300)
        elapsed = time.time() - min(sent.values())
        cpu = cpu_per_event(cpu0, cpu_seconds(services), len(sent))
    return {"brokers": brokers, "gateways": args.gateways, "workers": args.workers, "events": len(sent),
            "posted": len(posted), "duplicates": sum(1 for v in posted.values() if len(v) > 1),
            "capacity_events_per_s": round(len(sent) / elapsed, 1), "load_avg_1_5_15": [round(x, 1) for x in load],
            "cpu_us_per_event_total": round(sum(cpu.values()), 1), "cpu_us_per_event": cpu}


def compare_brokers(args: argparse.Namespace) -> dict:
    """End-to-end capacity of each broker count in ``--compare-brokers``, alternating over ``--rounds``."""
    counts = [int(c) for c in args.compare_brokers.split(",")]
    runs = []
    for r in range(args.rounds):
        for brokers in counts if r % 2 == 0 else counts[::-1]:
            run = capacity_run(brokers, args)
            runs.append(run)
            print(json.dumps(run), flush=True)
    medians = {b: float(np.median([x["capacity_events_per_s"] for x in runs if x["brokers"] == b])) for b in counts}
    base = medians[counts[0]]
    summary = {"runs": runs, "median_capacity_events_per_s": medians,
               "cost_vs_first": {b: round(1 - m / base, 3) for b, m in medians.items()}}
    for b, m in medians.items():
        print(f"{b} broker(s): median end-to-end capacity {m:,.0f} events/s; cost against {counts[0]}: "
              f"{(1 - m / base) * 100:.1f} %")
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="wall seconds of each latency phase")
    ap.add_argument("--ingest-seconds", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=500, help="events per request when measuring ingest")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--latency-batch", type=int, default=0,
                    help="events per request in the latency phases (default: --batch, the ingest's traffic shape)")
    ap.add_argument("--capacity-events", type=int, default=60000, help="events used to measure the e2e rate")
    ap.add_argument("--lanes", type=int, default=2, help="worker lanes (fewer lanes, larger ERP batches)")
    ap.add_argument("--rates", default="", help="extra latency phases at these events/s, e.g. 8000,10000")
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    ap.add_argument("--brokers", type=int, default=1, help="JetStream nodes: 1, or 3 (a cluster, streams R3)")
    ap.add_argument("--gateways", type=int, default=1, help="gateway uvicorn processes")
    ap.add_argument("--workers", type=int, default=1, help="worker processes (each consumes whole plants)")
    ap.add_argument("--plants", type=int, default=1, help="plants the load is spread over (at least --workers)")
    ap.add_argument("--compare-brokers", default="", help="only the e2e capacity, per broker count, e.g. 1,3")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of --compare-brokers")
    args = ap.parse_args()
    if args.compare_brokers:
        summary = compare_brokers(args)
        if args.json:
            args.json.write_text(json.dumps(summary, indent=2) + "\n")
        return

    plants = [f"P{i + 1:02d}" for i in range(max(args.plants, args.workers))]
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        run_dir = Path(tmp)
        clock = ScaledClock(time.time(), args.speed)
        with ServiceSet(run_dir / "logs") as services:
            scale = Scale.plan(args.brokers, args.gateways, args.workers, len(plants))
            layer = Layer(services, run_dir, scale, plants, clock, args.lanes)
            gateway, ledger, key = layer.urls["gateway"], layer.ledger, layer.keys["P01"]
            # 1. The gateway alone: batched ingest, acknowledged by JetStream.
            ingest = asyncio.run(ingest_rate(gateway, key, args.ingest_seconds, args.batch, args.clients))
            print(f"gateway batched ingest: {ingest:,.0f} events/s (batches of {args.batch}, {args.clients} clients)")
            asyncio.run(purge_events(layer.urls["broker"]))
            layer.start_workers()
            # 2. End-to-end capacity: how fast the workers turn a backlog into ERP postings.
            cpu0 = cpu_seconds(services)
            sent = asyncio.run(drive_plants(gateway, layer.keys, args.capacity_events, clock))
            wait_posted(ledger, "CAP-", len(sent), timeout=300)
            capacity = len(sent) / (time.time() - min(sent.values()))
            cpu = cpu_per_event(cpu0, cpu_seconds(services), len(sent))
            print(f"end-to-end capacity (gateway → JetStream → worker → ERP): {capacity:,.0f} events/s")
            print(f"CPU per event (µs): {json.dumps(cpu)}")
            demand = ingest / 2 * sum(cpu.values()) / 1e6
            print(f"CPU the chain needs at half the ingest rate: {demand:.2f} cores of {psutil.cpu_count()}")
            # 3. Latency at half the ingest rate (the target's load), then at half the e2e capacity.
            phases = {}
            extra = [(f"R{r}", float(r)) for r in filter(None, args.rates.split(","))]
            for name, rate in (("HALFINGEST", ingest / 2), ("HALFCAP", capacity / 2), *extra):
                batch = args.latency_batch or args.batch
                phases[name] = latency_phase(name, gateway, key, rate, args.seconds, batch, clock, ledger)
                print(name, json.dumps(phases[name]))
            half = phases["HALFINGEST"]
            verdict = "met" if half["p99_s"] is not None and half["p99_s"] < 1.0 else "missed"
            print(f"target p99 < 1 s at half the batched ingest ({half['rate_events_per_s']:,.0f} events/s): "
                  f"{verdict} (p99 {half['p99_s']} s; the chain needs {demand:.2f} cores there)")
    result = {"ingest_events_per_s": round(ingest, 1), "e2e_capacity_events_per_s": round(capacity, 1),
              "capacity_cpu_us_per_event": cpu, "cores_needed_at_half_ingest": round(demand, 2),
              "speed": args.speed, "lanes": args.lanes, "brokers": args.brokers, "gateways": args.gateways,
              "workers": args.workers, "half_ingest": phases["HALFINGEST"],
              "half_capacity": phases["HALFCAP"], **{k: v for k, v in phases.items() if k.startswith("R")}}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
