"""The worker's side of the broker: its connection, its durable pull consumer, quiet acks and shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from integration.broker import EVENTS_STREAM, ConnectionLog, ensure_streams, nats_servers
from integration.jspull import BulkPuller
from integration.workers.config import WorkerConfig


async def connect(url: str) -> Any:
    """A connection that reconnects for ever and reports losses in one line each (``url``: one URL or a
    cluster's, comma-separated)."""
    return await nats.connect(nats_servers(url), name="synctwin-worker", max_reconnect_attempts=-1,
                              reconnect_time_wait=0.25, connect_timeout=5, **ConnectionLog("worker", url).callbacks())


async def subscribe(nc: Any, cfg: WorkerConfig) -> BulkPuller:
    """Create the durable pull consumer unless it exists (a restarted worker resumes it); start pulling.

    One worker process reads the whole stream through ``cfg.consumer``; worker ``i`` of ``n`` reads only
    its plants' subjects through its own consumer (:func:`~integration.workers.config.partition_subjects`),
    so every event of a plant -- and so every posting of a lot -- goes through one process in order."""
    js = nc.jetstream()
    name, subjects = cfg.consumer_name, cfg.filter_subjects
    config = ConsumerConfig(
        durable_name=name, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
        ack_wait=cfg.consumer_ack_wait, max_deliver=-1, max_ack_pending=cfg.max_ack_pending,
        filter_subject=subjects[0] if len(subjects) == 1 else None,
        filter_subjects=subjects if len(subjects) > 1 else None,
    )
    await ensure_streams(js)  # idempotent; the worker may start before the gateway
    # On a cluster the consumer's state (acks) is replicated like the stream; kept in memory it costs the
    # nodes far less per ack, and a node's loss still leaves it on the others.
    config.mem_storage = ((await js.stream_info(EVENTS_STREAM)).config.num_replicas or 1) > 1 or None
    try:
        await js.consumer_info(EVENTS_STREAM, name)
    except NotFoundError:
        await js.add_consumer(EVENTS_STREAM, config)
    puller = BulkPuller(nc, EVENTS_STREAM, name, cfg.fetch_batch, cfg.fetch_wait)
    await puller.start()
    return puller


async def quietly(awaitable: Awaitable[Any], timeout: float | None = None) -> None:
    """Await ``awaitable`` ignoring its failure: used for acks and shutdown, where the broker may be
    gone and JetStream's redelivery is the recovery path."""
    try:
        if timeout is None:
            await awaitable
        else:
            async with asyncio.timeout(timeout):
                await awaitable
    except asyncio.CancelledError:
        # A cancelled *awaitable* (a task stopped on purpose) is ignored, but a cancellation of the task
        # running this line must go on: swallowing it left a lane or the heartbeat looping after shutdown.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception:  # noqa: BLE001 - see docstring
        pass


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has ended, cancelling again any that went on.

    Python 3.11's ``asyncio.wait_for`` (in libraries too) drops a cancellation that arrives just as the
    thing it waits for finishes; one ``cancel()`` then leaves the task running and a shutdown hanging.
    Our own waits use ``asyncio.timeout``, which does not."""
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
