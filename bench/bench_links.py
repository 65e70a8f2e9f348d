"""What the fault-proxy relays on every hop cost: the live stack with only the WAN links proxied, then with
every link (``--links all``: gateway → broker, worker → ERP, edge → OPC UA server too), side by side.

Each round runs the chaos scenario (``scenarios/chaos/scenarios/two-plants.yaml``: two plants, one ERP,
a steady stream of material issues) for ``--minutes`` scenario minutes at ``--speed``, once per setting,
alternating, and reads the run folder's trace: per event the wall milliseconds from the edge's outbox to
the broker (edge → gateway → broker), from the broker to the ERP ledger (worker → ERP), and end to end
(outbox to ledger). ``--pings`` first times one relay on its own: the round trip of a 200-byte request
and its answer over loopback, direct and through a fault proxy without toxics (the cost per hop). Usage::

    .venv/bin/python bench/bench_links.py --minutes 20 --rounds 2 --pings 2000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "chaos" / "scenarios" / "two-plants.yaml"
HOPS = {"edge->broker": ("t_edge", "t_broker"), "broker->erp": ("t_broker", "t_delivered"),
        "edge->erp": ("t_edge", "t_delivered")}


def one_run(links: tuple[str, ...], minutes: float, speed: float, out: Path) -> dict[str, dict[str, float]]:
    """Run the stack once; per hop the p50/p95/p99 in wall milliseconds and the event count."""
    import pandas as pd

    from live.stack import LiveStack, StackOptions
    from scenarios.loader import load_scenario

    options = StackOptions(speed=speed, duration=minutes * 60, insecure=True, progress=False, finalize=False,
                           plant_host="process", warmup=8.0, links=links)
    LiveStack(load_scenario(SCENARIO), out, options, log=lambda _line: None).run()
    trace = pd.read_parquet(out / "trace.parquet")
    trace = trace[trace["t_delivered"].notna() & trace["t_edge"].notna()]
    result = {}
    for hop, (a, b) in HOPS.items():
        wall_ms = (trace[b] - trace[a]).to_numpy() / speed * 1000
        result[hop] = {"n": int(len(wall_ms)), **{f"p{q}": float(np.percentile(wall_ms, q)) for q in (50, 95, 99)}}
    return result


def relay_round_trips(pings: int) -> dict[str, float]:
    """Median and p99 round trip (µs) of a 200-byte exchange, direct and through one fault proxy."""
    import socket
    import threading
    import time

    from live.faultproxy import FaultProxies

    server = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    direct = f"http://127.0.0.1:{server.getsockname()[1]}"
    proxies = FaultProxies()
    out = {}
    try:
        for name, url in (("direct", direct), ("relay", proxies.add("bench", direct))):
            port = int(url.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port)) as conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                times = []
                for _ in range(pings):
                    began = time.perf_counter()
                    conn.sendall(b"x" * 200)
                    got = 0
                    while got < 200:
                        got += len(conn.recv(65536))
                    times.append((time.perf_counter() - began) * 1e6)
            out[f"{name} p50"] = float(np.median(times))
            out[f"{name} p99"] = float(np.percentile(times, 99))
    finally:
        proxies.close()
        server.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0, help="scenario minutes per run")
    parser.add_argument("--speed", type=float, default=60.0, help="scenario seconds per wall second")
    parser.add_argument("--rounds", type=int, default=2, help="runs per setting, alternating (0: pings only)")
    parser.add_argument("--pings", type=int, default=2000, help="round trips timed through one relay (0: skip)")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    pings = relay_round_trips(args.pings) if args.pings else {}
    if pings:
        print("one relay, 200-byte round trip (µs): " + ", ".join(f"{k} {v:.0f}" for k, v in pings.items()))
    settings = {"wan only": (), "every hop": ("all",)}
    runs: dict[str, list[dict]] = {name: [] for name in settings}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, links in settings.items():
                out = Path(tmp) / f"{name.replace(' ', '-')}-{r}"
                runs[name].append(one_run(links, args.minutes, args.speed, out))
                print(f"round {r + 1} {name}: " + ", ".join(
                    f"{hop} p50 {v['p50']:.0f} ms p95 {v['p95']:.0f} ms" for hop, v in runs[name][-1].items()))
    if not args.rounds:
        return
    print(f"\nmedian over {args.rounds} round(s), wall ms ({args.minutes:g} scenario min at {args.speed:g}x)")
    print(f"{'hop':<14}" + "".join(f"{name + ' ' + q:>18}" for name in settings for q in ("p50", "p95")))
    summary = {}
    for hop in HOPS:
        row = {name: {q: float(np.median([run[hop][q] for run in runs[name]])) for q in ("p50", "p95", "p99")}
               for name in settings}
        summary[hop] = row
        print(f"{hop:<14}" + "".join(f"{row[name][q]:>18.0f}" for name in settings for q in ("p50", "p95")))
    if args.json:
        args.json.write_text(json.dumps({"pings": pings, "runs": runs, "median": summary}, indent=1))


if __name__ == "__main__":
    main()
