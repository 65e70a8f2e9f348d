"""``synctwin worker``: one worker process, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import json
import signal

from integration.gc_tuning import tune_gc
from integration.workers.config import WorkerConfig, WorkerStats
from integration.workers.worker import Worker


def _run_loop(coro):
    """``asyncio.run`` on uvloop when installed (``uvicorn[standard]`` brings it): the worker is
    I/O bound per message and uvloop halves the event loop's share of its CPU."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def run_worker(config: WorkerConfig) -> WorkerStats:
    """Entry point of ``synctwin worker``: run until SIGTERM/SIGINT, print READY once consuming."""

    async def main() -> WorkerStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = Worker(config, on_ready=lambda: print(f"READY worker {config.nats_url}", flush=True))
        await worker.run(stop)
        return worker.stats

    tune_gc()
    stats = _run_loop(main())
    print(json.dumps({"worker": "stopped", **stats.__dict__}), flush=True)
    return stats
