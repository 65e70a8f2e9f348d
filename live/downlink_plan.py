"""How the live stack wires the downlink: the plants' endpoints, their WAN links, the downlink process.

Names in the stack's URL map: ``plant-<plant>`` is the plant's endpoint (served by its edge on a port
chosen here, so a restarted edge serves on the same one), ``wan-down-<plant>`` the fault proxy in front of
it (relay ``<plant>-down``: the same WAN link as the uplink relay ``<plant>``, cut and healed with it) and
``downlink`` the enterprise process (:mod:`live.downlink_service`).
"""

from __future__ import annotations

from typing import Any

from kernel.net import free_port
from live.procs import python_module

DOWNLINK_MODULE = "live.downlink_service"
DOWNLINK = "downlink"


def plant_endpoints(plants: list[str]) -> dict[str, str]:
    """``plant-<plant>`` -> ``http://127.0.0.1:<free port>`` for each plant."""
    return {f"plant-{p}": f"http://127.0.0.1:{free_port()}" for p in plants}


def down_relay(plant: str) -> str:
    """The fault proxy carrying ``plant``'s downlink (on the plant's WAN link)."""
    return f"{plant}-down"


def add_down_relays(relays: Any, urls: dict[str, str], plants: list[str]) -> dict[str, str]:
    """Proxy each plant's endpoint; returns ``wan-down-<plant>`` -> the URL the downlink dials."""
    return {f"wan-down-{p}": relays.add(down_relay(p), urls[f"plant-{p}"]) for p in plants}


def wan_relays(plant: str, relays: Any) -> list[str]:
    """Every relay of ``plant``'s WAN link that exists: the uplink's and the downlink's."""
    return [name for name in (plant, down_relay(plant)) if name in relays.relays]


def edge_api_args(plant: str, urls: dict[str, str]) -> list[str]:
    """The edge's ``--plant-api-port`` when the stack planned the plant's endpoint."""
    url = urls.get(f"plant-{plant}")
    return ["--plant-api-port", url.rsplit(":", 1)[1]] if url else []


def downlink_command(scenario: str, run_dir: str, nats_url: str, urls: dict[str, str], plants: list[str],
                     clock: list[str], erp_kinds: tuple[str, ...] = ()) -> list[str]:
    """Command line of the downlink process (``clock``: ``--epoch E --speed S``; the ERPs whose state gates
    order releases)."""
    targets = [a for p in plants for a in ("--plant", f"{p}={urls[f'wan-down-{p}']}")]
    erps = [a for k in erp_kinds if f"erp-{k}" in urls for a in ("--erp", f"{k}={urls[f'erp-{k}']}")]
    return python_module(DOWNLINK_MODULE, "--nats", nats_url, "--scenario", scenario, "--run-dir", run_dir,
                         *targets, *erps, *clock)


async def downlink_backlog(nats_url: str, plants: list[str]) -> int:
    """Messages the downlink has not finished: goods receipts the QMS has not decided on, and enterprise
    messages not yet applied at a plant or (quality holds) at the ERP (pending plus delivered-unacked); -1
    when unknown. A run without an ERP URL for the downlink has no ERP consumers: those count 0."""
    import nats

    from integration.broker import EVENTS_STREAM
    from live.downlink import DOWNLINK_STREAM

    nc = await nats.connect(servers=nats_url.split(","), connect_timeout=2, max_reconnect_attempts=1)
    try:
        js, total = nc.jetstream(), 0
        from nats.js.errors import NotFoundError

        for stream, consumer in [(EVENTS_STREAM, f"qms-{p}") for p in plants] + \
                                [(DOWNLINK_STREAM, f"{kind}-{p}") for kind in ("plant", "erp-quality") for p in plants]:
            try:
                info = await js.consumer_info(stream, consumer)
            except NotFoundError:
                if consumer.startswith("erp-quality-"):
                    continue
                raise
            total += int(info.num_pending or 0) + int(info.num_ack_pending or 0)
        return total
    except Exception:  # noqa: BLE001 - no consumer yet or broker busy: unknown, not drained
        return -1
    finally:
        await nc.close()
