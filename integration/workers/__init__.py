"""Integration workers: JetStream ``EVENTS`` → mapping → routing → ERP postings, exactly once, in batches.

The package, by seam:

- :mod:`~integration.workers.config`: what a worker is told (``WorkerConfig``, ``--erp`` URLs) and counts;
- :mod:`~integration.workers.broker_link`: its connection and durable pull consumer;
- :mod:`~integration.workers.lanes`: message copies and the per-business-key lanes they queue in;
- :mod:`~integration.workers.triage`: one batch sorted into hand-offs, dead letters and postings per
  target ERP (mapping, and rollout routing on ``t_created`` through :mod:`kernel.routing`);
- :mod:`~integration.workers.delivery_loop`: posting to one ERP under the sans-IO
  :class:`~integration.delivery.Delivery` (retries, breaker, idempotency, lost answers);
- :mod:`~integration.workers.outcomes`: delivery rows, dead letters and acks, in that order;
- :mod:`~integration.workers.worker`: the :class:`Worker` joining them; :mod:`~integration.workers.entry`:
  the ``synctwin worker`` process.
"""

from integration.workers.config import CONSUMER, WorkerConfig, WorkerStats, parse_erp_urls
from integration.workers.entry import run_worker
from integration.workers.worker import Worker

__all__ = ["CONSUMER", "Worker", "WorkerConfig", "WorkerStats", "parse_erp_urls", "run_worker"]
