"""``quietly`` ignores a failed or cancelled *awaitable* (acks and shutdown steps whose loss redelivery
recovers) but never a cancellation of the task awaiting it: a lane or heartbeat cancelled while it acks
must end, or the worker's shutdown waits for it forever."""

from __future__ import annotations

import asyncio

from integration.workers.broker_link import quietly


def test_a_loop_of_quiet_awaits_ends_when_its_task_is_cancelled():
    async def scenario() -> bool:
        started = asyncio.Event()

        async def heartbeat() -> None:
            for _ in range(20):  # bounded, so that a swallowed cancellation fails the test instead of hanging it
                started.set()
                await quietly(asyncio.sleep(10), timeout=0.05)

        task = asyncio.create_task(heartbeat())
        await started.wait()
        task.cancel()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 2.0)
        return task.cancelled()

    assert asyncio.run(scenario())


def test_failures_timeouts_and_cancelled_awaitables_are_ignored():
    async def scenario() -> None:
        async def fails() -> None:
            raise ConnectionError("broker gone")

        await quietly(fails())
        await quietly(asyncio.sleep(10), timeout=0.01)
        stopped = asyncio.create_task(asyncio.sleep(10))
        stopped.cancel()
        await quietly(stopped)  # awaiting a task stopped on purpose does not stop the caller

    asyncio.run(scenario())
