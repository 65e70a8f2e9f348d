"""Status reads of the gateway on a long stream: unknown and old ids after a restart.

Starts an embedded NATS JetStream server and two gateways on it, which post ``--events`` events each in
batches of ``--batch``, alternating batch by batch (each event on its own subject, ``events.<plant>.<flow>.
<id token>``: a status read looks its id up by subject). Then a third, freshly started gateway (nothing in
memory, as after a restart) answers status GETs over HTTP for an id never stored (404), for the oldest id
and for a recent one, ``--reads`` times each; for comparison a scan of the plant's stream for an id (what
the status GET did before ids were looked up) is timed once.

    .venv/bin/python bench/bench_status.py                      # 100k + 100k events, 200 reads each
    .venv/bin/python bench/bench_status.py --events 20000 --reads 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration.broker import EVENTS_STREAM, HEADER_MSG_ID, EmbeddedNats, read_messages  # noqa: E402
from live.procs import Service  # noqa: E402

KEYS = {"admin": "bench-admin", "plants": {"P01": "bench-p01"}}
KEY = {"X-Api-Key": "bench-p01"}


def gateway(name: str, broker: EmbeddedNats, creds: Path, logs: Path) -> Service:
    command = [sys.executable, "-m", "synctwin.commands.live_services", "gateway", "--nats", broker.url,
               "--credentials", str(creds), "--rate-limit", "10000000/s", "--max-batch", "5000"]
    env = {"SYNCTWIN_GATEWAY_STATUS_RATE_LIMIT": "1000000/s"}
    proc = Service(name, command, logs, env=env)
    proc.start()
    return proc


def batch_body(prefix: str, start: int, n: int) -> bytes:
    return json.dumps([{"txn_id": f"{prefix}-{i}", "flow": "backflush", "item": "RM-10", "qty": 1.5, "unit": "KG",
                        "t_created": float(i)} for i in range(start, start + n)]).encode()


def fill(urls: dict[str, str], events: int, batch: int) -> dict[str, list[float]]:
    """Post ``events`` events through each gateway, alternating batches; seconds per request, by gateway."""
    times: dict[str, list[float]] = {name: [] for name in urls}
    clients = {name: httpx.Client(base_url=url, timeout=60) for name, url in urls.items()}
    try:
        for start in range(0, events, batch):
            n = min(batch, events - start)
            for name, client in clients.items():
                body = batch_body(name, start, n)
                t0 = time.perf_counter()
                r = client.post("/v2/events", content=body, headers=KEY)
                times[name].append(time.perf_counter() - t0)
                if r.status_code != 202:
                    raise SystemExit(f"{name}: {r.status_code} {r.text[:200]}")
    finally:
        for client in clients.values():
            client.close()
    return times


def read_times(url: str, path: str, reads: int, expected: int) -> list[float]:
    """Wall seconds of ``reads`` sequential status GETs of ``path`` (each must answer ``expected``)."""
    out = []
    with httpx.Client(base_url=url, timeout=30) as client:
        client.get("/health")  # the connection is open before timing
        for _ in range(reads):
            t0 = time.perf_counter()
            r = client.get(path, headers=KEY)
            out.append(time.perf_counter() - t0)
            if r.status_code != expected:
                raise SystemExit(f"{path}: {r.status_code} {r.text[:200]}")
    return out


async def stream_size_and_scan(url: str, wanted: str) -> tuple[int, float]:
    """Messages in EVENTS, and the seconds the former status GET's stream scan took to find ``wanted``."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    size = (await js.stream_info(EVENTS_STREAM)).state.messages
    t0 = time.perf_counter()
    hits = await read_messages(js, EVENTS_STREAM, "events.P01.>", None,
                               lambda m: (m.headers or {}).get(HEADER_MSG_ID) == wanted)
    took = time.perf_counter() - t0
    await nc.close()
    assert not hits
    return size, took


def ms(values: list[float], q: float) -> float:
    return 1000 * (statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if q < 100 else max(values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000, help="events posted through each gateway")
    parser.add_argument("--batch", type=int, default=1000, help="events per request")
    parser.add_argument("--reads", type=int, default=200, help="status GETs timed per kind of id")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        creds = tmp / "credentials.json"
        creds.write_text(json.dumps(KEYS))
        broker = EmbeddedNats(tmp / "nats", die_with_parent=True)
        broker.start()
        procs = []
        try:
            procs = [gateway("indexed", broker, creds, tmp), gateway("plain", broker, creds, tmp)]
            t0 = time.perf_counter()
            times = fill({p.name: p.url for p in procs}, args.events, args.batch)
            filled = time.perf_counter() - t0
            for p in procs:
                p.stop()
            fresh = gateway("fresh", broker, creds, tmp)
            procs.append(fresh)
            unknown = read_times(fresh.url, "/v2/plants/P01/events/never-stored", args.reads, 404)
            oldest = read_times(fresh.url, "/v2/plants/P01/events/indexed-0", args.reads, 200)
            newest = read_times(fresh.url, f"/v2/plants/P01/events/indexed-{args.events - 1}", args.reads, 200)
            size, scan = asyncio.run(stream_size_and_scan(broker.url, "never-stored"))
        finally:
            for p in procs:
                p.stop()
            broker.stop()

    per_event = {name: sum(t) / args.events * 1e6 for name, t in times.items()}
    print(f"stream: {size:,} messages in EVENTS (filled in {filled:.0f} s); load average 1 min "
          f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {os.cpu_count()} cores")
    print(f"ingest, batches of {args.batch}: request p50 {ms(times['indexed'], 50):.0f} / {ms(times['plain'], 50):.0f}"
          f" ms; wall per event {per_event['indexed']:.1f} / {per_event['plain']:.1f} us (the two gateways)")
    print("status GET on a freshly started gateway, ms (p50 / p99 / max):")
    for label, values in (("unknown id (404)", unknown), ("oldest id", oldest), ("newest id", newest)):
        print(f"  {label:18s} {ms(values, 50):6.1f} / {ms(values, 99):6.1f} / {ms(values, 100):6.1f}")
    print(f"former stream scan for an unknown id: {scan * 1000:.0f} ms")
    verdict = "met" if ms(unknown, 99) < 50 else "MISSED"
    print(f"target (unknown id < 50 ms at p99 with >= 100k messages): {verdict}")


if __name__ == "__main__":
    main()
