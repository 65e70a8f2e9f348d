"""The live worker after an ERP outage (real nats-server, stand-in ERP over HTTP): while the breaker is
open its cooldown paces the retries, and when a probe closes it every lane waiting on the ERP retries at
once, so the recovery is bounded by one cooldown however many probes each lane's head batch failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.workers_support import SCENARIO, SPEED, deliveries, event, publish, running_worker
from tests.polling import until

pytestmark = pytest.mark.anyio

COOLDOWN = 30.0  # scenario seconds: half a wall second at speed 60
OUTAGE_POLICY = dict(SCENARIO, landscape=dict(
    SCENARIO["landscape"],
    integration={"retry": {"initial": "2s", "multiplier": 2, "max_delay": "5m", "max_attempts": 100},
                 "circuit_breaker": {"failure_threshold": 3, "cooldown": f"{COOLDOWN:g}s"}}))


async def test_every_lane_retries_when_a_probe_closes_the_breaker(jetstream, erp, tmp_path: Path):
    erp.mode = 503
    async with running_worker(jetstream, erp, tmp_path, OUTAGE_POLICY) as worker:
        await publish(jetstream.url, *(event(f"L{i}", lot=f"LOT-{i}") for i in range(8)))
        # Sixteen failed probes over two lanes: each head batch's own backoff has grown past 2 minutes.
        await until(lambda: worker.stats.failed_attempts >= 3 + 16, deadline_s=30, what="probes failing")
        up = worker.clock.now()
        erp.mode = 201
        await until(lambda: len(deliveries(tmp_path)) == 8, deadline_s=30, what="postings after the outage")
        breaker = worker.deliveries["legacy"].breaker
    rows = deliveries(tmp_path)
    assert {r[1] for r in rows} == {"delivered"} and max(r[3] for r in rows) > 5
    assert breaker.closings == 1
    recovery = max(r[6] for r in rows) - up
    # The first probe after the ERP came back (<= one cooldown, plus a lane's jitter of `initial`), then all
    # lanes at once; before, a lane slept out its backoff (up to 5 min) after the probe had closed the breaker.
    assert 0.0 < recovery <= COOLDOWN + 2.0 + 0.5 * SPEED, f"recovered {recovery:.1f} s after the ERP came back"
