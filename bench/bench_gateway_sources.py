"""What the gateway's edge-source bookkeeping costs: ``SourceWatch.observe`` once per request, and building a
body's broker messages with and without correcting every event's ``t_created`` (only a plant whose clock is
flagged ahead is corrected). Interleaved rounds, minimum per variant, so a busy moment hits all alike.

    .venv/bin/python bench/bench_gateway_sources.py                  # 200-event bodies, 15 rounds
    .venv/bin/python bench/bench_gateway_sources.py --events 50 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from integration.gateway.ingest import parse_body, to_messages  # noqa: E402
from integration.gateway.sources import SourceWatch  # noqa: E402
from kernel.clock import ScaledClock  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200, help="events per request body")
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds per variant")
    parser.add_argument("--number", type=int, default=500, help="bodies per round")
    args = parser.parse_args()
    body = json.dumps([{"txn_id": f"t{i}", "flow": "material_issue", "item": "RM-10", "qty": 1.5, "unit": "KG",
                        "t_created": 6000.0 + i} for i in range(args.events)]).encode()
    payloads = parse_body(body, "v2")
    watch = SourceWatch(ScaledClock(time.time() - 100, 60.0))
    variants = {"plain": lambda: to_messages(payloads, "P01"),
                "every event corrected": lambda: to_messages(payloads, "P01", -600.0, 0.0)}
    best = {name: float("inf") for name in variants}
    for _ in range(args.rounds):
        for name, run in variants.items():
            best[name] = min(best[name], timeit.timeit(run, number=args.number) / args.number)
    now = time.time()
    observe = min(timeit.repeat(lambda: watch.observe("P01", "edge-P01-x", "6000.0", now), number=20_000,
                                repeat=args.rounds)) / 20_000
    for name, seconds in best.items():
        print(f"to_messages, {name}: {seconds * 1e6 / args.events:.2f} us/event")
    print(f"SourceWatch.observe: {observe * 1e6:.2f} us/request")


if __name__ == "__main__":
    main()
