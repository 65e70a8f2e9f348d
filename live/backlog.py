"""How far behind the workers are: the broker's count of messages they have not finished.

Read by the live stack's drain, the chaos probes and live view, and the load driver.
"""

from __future__ import annotations

from integration.workers import CONSUMER


async def consumer_backlog(nats_url: str, consumer: str = CONSUMER) -> int:
    """Messages the workers have not finished: pending in the stream plus delivered-but-unacked, summed
    over the workers' consumer and its partitions (``<consumer>-<i>``); ``nats_url`` may list a cluster."""
    import nats

    from integration.broker import nats_servers

    try:
        nc = await nats.connect(nats_servers(nats_url), connect_timeout=2, max_reconnect_attempts=1)
    except Exception:  # noqa: BLE001 - broker down: unknown, not drained
        return -1
    try:
        infos = await nc.jetstream().consumers_info("EVENTS")
        ours = [i for i in infos if i.name == consumer or i.name.removeprefix(f"{consumer}-").isdigit()]
        if not ours:
            return -1  # no consumer yet: unknown, not drained
        return sum(int(i.num_pending or 0) + int(i.num_ack_pending or 0) for i in ours)
    except Exception:  # noqa: BLE001 - broker busy: unknown, not drained
        return -1
    finally:
        await nc.close()
