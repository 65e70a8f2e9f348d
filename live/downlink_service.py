"""The enterprise side of the downlink as one process: the ERP's order release job (:mod:`live.order_release`)
and master-data publisher (:mod:`live.master_data`), the QMS (:mod:`live.qms_service`) and one deliverer
per plant (:mod:`live.downlink`), plus, given the ERPs' URLs, one per plant of its quality holds and releases
to the ERP (:class:`live.downlink.ErpQualityDeliverer`).

``python -m live.downlink_service --nats URL --scenario FILE --run-dir DIR --plant P01=http://.. [...]
[--erp legacy=http://..] --epoch T --speed S`` prints ``READY downlink <nats url>`` once its consumers exist
and stops cleanly on SIGTERM/SIGINT (unfinished messages stay unacknowledged; JetStream hands them out
again after a restart).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

import httpx
import nats
from nats.errors import Error as NatsError

from integration.broker import EVENTS_STREAM
from integration.workers.config import parse_erp_urls
from kernel.clock import ScaledClock
from kernel.routing import Routing
from live.downlink import DownlinkLog, ErpQualityDeliverer, PlantDeliverer, ensure_downlink_stream
from live.intervals import wall_interval
from live.master_data import MasterDataRelease
from live.order_release import OrderRelease
from live.qms_service import Qms
from scenarios.loader import load_scenario
from scenarios.spec import Scenario


def parse_plant_urls(values: list[str], scenario: Scenario) -> dict[str, str]:
    """``["P01=http://.."]`` -> mapping; raises ValueError naming the bad value or a plant left out."""
    urls: dict[str, str] = {}
    for value in values:
        plant, sep, url = value.partition("=")
        if not sep or not url.startswith(("http://", "https://")):
            raise ValueError(f"--plant {value!r}: write PLANT=URL, e.g. --plant P01=http://127.0.0.1:9001")
        urls[plant] = url
    known = {p.id for p in scenario.landscape.all_plants}
    if unknown := set(urls) - known:
        raise ValueError(f"--plant: {', '.join(sorted(unknown))} not in the scenario "
                         f"(plants: {', '.join(sorted(known))})")
    return urls


async def _qms_loop(qms: Qms, orders: OrderRelease, master: MasterDataRelease, js, stop: asyncio.Event,
                    horizon: float, tick: float, ack_wait: float) -> None:
    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    subs = {}
    for plant, subject in qms.subjects().items():
        config = ConsumerConfig(durable_name=f"qms-{plant}", ack_policy=AckPolicy.EXPLICIT,
                                deliver_policy=DeliverPolicy.ALL, ack_wait=ack_wait, max_deliver=-1)
        subs[plant] = await js.pull_subscribe(subject, durable=f"qms-{plant}", stream=EVENTS_STREAM, config=config)
    http = httpx.AsyncClient()
    broker_down = False
    while not stop.is_set():
        try:
            await orders.release_due(js, http)
            await master.release_due(js, http)
            for plant, sub in subs.items():
                with contextlib.suppress(TimeoutError, NatsTimeout):
                    msgs = await sub.fetch(batch=500, timeout=tick)
                    qms.on_receipts(plant, msgs)  # stored before acknowledged
                    for m in msgs:
                        with contextlib.suppress(Exception):
                            await m.ack()
            await qms.publish_due(js, horizon)
            broker_down = False
        except NatsError as exc:
            # The broker is restarting (or electing a leader): what was not published stays due in the
            # stores and goes out, under the same message ids, once it answers again.
            if not broker_down:
                print(f"downlink: broker unavailable ({type(exc).__name__}); retrying", file=sys.stderr, flush=True)
            broker_down = True
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(tick, 0.2)):
                    await stop.wait()
    await http.aclose()


async def serve(args: argparse.Namespace) -> None:
    scenario = load_scenario(args.scenario)
    urls = parse_plant_urls(args.plant, scenario)
    clock = ScaledClock(args.epoch, args.speed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    nc = await nats.connect(servers=args.nats.split(","), max_reconnect_attempts=-1)  # a cluster: every node
    js = nc.jetstream()
    await ensure_downlink_stream(js)
    state = Path(args.run_dir) / "state"
    log = DownlinkLog(state / "downlink.sqlite")
    integ = scenario.landscape.integration
    retry = (integ.retry.initial, integ.retry.multiplier, integ.retry.max_delay)
    ack_wait = max(5.0, integ.broker.ack_wait / args.speed)
    erps = parse_erp_urls(args.erp)
    deliverers = [PlantDeliverer(p, u, clock, log, retry) for p, u in urls.items()]
    if erps:  # quality holds and releases reach the ERP too, each plant's from its own consumer
        route = Routing.of(scenario).target
        deliverers += [ErpQualityDeliverer(p, erps, route, clock, log, retry) for p in urls]
    subs = [await d.subscribe(js, ack_wait) for d in deliverers]
    qms = Qms(scenario, Path(args.run_dir), clock)
    orders = OrderRelease(scenario, Path(args.run_dir), clock, erps)
    master = MasterDataRelease(scenario, Path(args.run_dir), clock, erps)
    tick = wall_interval(1.0, args.speed, floor=0.02)
    tasks = [asyncio.create_task(d.run(s, stop, fetch_wait=tick)) for d, s in zip(deliverers, subs, strict=True)]
    tasks.append(asyncio.create_task(_qms_loop(qms, orders, master, js, stop, scenario.run.duration, tick, ack_wait)))
    print(f"READY downlink {args.nats}", flush=True)
    try:
        done, _ = await asyncio.wait([asyncio.create_task(stop.wait()), *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task.exception() is not None:
                raise task.exception()
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await nc.close()
        log.close()
        qms.store.close()
        orders.close()
        master.close()
        print(f"downlink: orders released {orders.released}, master data {master.released}, "
              f"quality messages {qms.published}, "
              f"delivered {sum(d.delivered for d in deliverers)}, "
              f"failed attempts {sum(d.failed_attempts for d in deliverers)}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m live.downlink_service", description=__doc__.splitlines()[0])
    parser.add_argument("--nats", required=True, help="broker URL, e.g. nats://127.0.0.1:4222")
    parser.add_argument("--scenario", required=True, type=Path, help="the run's resolved scenario YAML")
    parser.add_argument("--run-dir", required=True, type=Path,
                        help="run folder (state/qms.sqlite, state/downlink.sqlite)")
    parser.add_argument("--plant", action="append", default=[], help="PLANT=URL of the plant's endpoint (repeat)")
    parser.add_argument("--erp", action="append", default=[], help="KIND=URL of an ERP twin (releases; quality holds)")
    parser.add_argument("--epoch", type=float, required=True, help="Unix time of scenario second 0")
    parser.add_argument("--speed", type=float, default=60.0, help="scenario seconds per wall second")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args))
    except ValueError as exc:
        parser.exit(2, f"error: {exc}\n")


if __name__ == "__main__":
    main()
