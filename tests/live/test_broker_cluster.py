"""kill -9 of one node of a 3-node JetStream cluster under steady load, gateway and workers scaled out.

The streams are replicated on every node, so a PubAck (the gateway's 202) means a quorum stored the
event: the gateway keeps answering through the leader election (a short burst of 503 with
Retry-After, counted here), nothing answered 202 is lost and nothing reaches the ERP twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from integration.broker import EVENTS_STREAM
from integration.broker_cluster import stream_leader
from integration.gateway.settings import GatewaySettings
from live.procs import ServiceSet
from live.stack_plan import Scale
from tests.live.cluster_support import ledger_ids, out_of_order, start_backbone, steady_load
from tests.polling import poll


@pytest.mark.slow
def test_kill_9_of_the_stream_leader_loses_and_duplicates_nothing(tmp_path: Path):
    with ServiceSet(tmp_path / "logs") as services:
        backbone = start_backbone(tmp_path, services, Scale.plan(3, 2, 2, 2))
        leader = asyncio.run(stream_leader(backbone.urls["broker"], EVENTS_STREAM))
        assert leader in {"broker-1", "broker-2", "broker-3"}
        load = asyncio.run(steady_load(backbone.urls["gateway"], backbone.keys, seconds=6.0, fault_at=2.5,
                                       fault=services[leader].kill))
        assert not services[leader].alive()
        posted = poll(lambda: (ids := ledger_ids(backbone.ledger)) and load.accepted <= set(ids) and ids, 60.0,
                      0.25, "events answered 202 missing from the ERP ledger")
        new_leader = asyncio.run(stream_leader(backbone.urls["broker"], EVENTS_STREAM))

    print(f"killed {leader} (new leader {new_leader}); accepted again after {load.recovered_after_s} s; refused "
          f"{load.refused}; slowest answer {load.slowest_s:.2f} s; {len(load.accepted)} accepted")
    assert load.recovered_after_s is not None and load.recovered_after_s < 20  # the election ends, ingest resumes
    assert load.accepted_after_fault >= 200  # and goes on
    assert set(load.refused) <= {503} and load.retry_after_missing == 0
    assert sum(load.refused.values()) <= 2 * (load.recovered_after_s + 2)  # one 503 a second a plant, no more
    # Answered, not hung: a publish whose connection died fails at once; one the dying leader had taken but never
    # acknowledged (the gateway connected to a surviving node) fails at the gateway's publish timeout.
    assert load.slowest_s < GatewaySettings().publish_timeout + 2.0
    assert new_leader != leader
    twice = [t for t, n in Counter(posted).items() if n > 1]
    assert twice == []  # nothing posted twice
    assert set(posted) == load.accepted  # nothing lost, nothing refused-but-posted
    assert out_of_order(posted) == []  # each lot's postings in order (one worker per plant)
