"""Batched delivery: one ERP request per lane batch, bulk de-duplication, a batch retried as a unit,
lost answers checked in bulk, a refused batch narrowed down to the offending posting."""

from __future__ import annotations

from pathlib import Path

import pytest

from integration.processed_keys import SqliteProcessedKeys
from integration.workers.config import batch_cap
from scenarios.loader import parse_scenario
from tests.integration.workers_support import SCENARIO, deliveries, event, publish, running_worker
from tests.polling import until

pytestmark = pytest.mark.anyio


async def test_batch_with_an_already_processed_key_posts_only_the_others(jetstream, erp, tmp_path: Path):
    with SqliteProcessedKeys(tmp_path / "state" / "worker-keys.sqlite") as keys:
        keys.add("OLD")  # posted by an earlier worker process
    # Published before the worker starts, so one fetch sees them all; one lane makes them one batch.
    await publish(jetstream.url, event("N1"), event("OLD"), event("N2"), event("N3"))
    async with running_worker(jetstream, erp, tmp_path, lanes=1) as worker:
        await until(lambda: len(deliveries(tmp_path)) == 4, what="four copies handled")
    assert [r["txn_id"] for r in erp.ledger] == ["N1", "N2", "N3"]
    assert sum(erp.batches) == 3 and erp.requests == len(erp.batches)
    outcomes = {r[0]: r[1] for r in deliveries(tmp_path)}
    assert outcomes == {"OLD": "duplicate_suppressed", "N1": "delivered", "N2": "delivered", "N3": "delivered"}
    assert (worker.stats.delivered, worker.stats.suppressed, worker.stats.batches) == (3, 1, 1)


async def test_failing_batch_is_retried_as_a_unit_and_posts_each_once(jetstream, erp, tmp_path: Path):
    erp.answers.extend([503, 503])  # the breaker threshold is 3: two failures leave it closed
    txns = [f"R{i}" for i in range(40)]
    await publish(jetstream.url, *(event(t) for t in txns))
    async with running_worker(jetstream, erp, tmp_path, lanes=1) as worker:
        await until(lambda: len(deliveries(tmp_path)) == 40, what="40 deliveries")
    assert sorted(r["txn_id"] for r in erp.ledger) == sorted(txns)
    assert [r["txn_id"] for r in erp.ledger] == txns  # stream order kept through the retries
    assert worker.stats.failed_attempts == 2 and erp.requests == len(erp.batches) + 2
    assert max(erp.batches) > 1  # postings went out in batches, not one by one
    # The first batch failed twice as a unit, then landed: each of its messages took three attempts.
    attempts = [r[3] for r in deliveries(tmp_path)]
    assert attempts.count(3) == erp.batches[0] and set(attempts) <= {1, 3}
    assert {r[1] for r in deliveries(tmp_path)} == {"delivered"}
    assert worker.deliveries["legacy"].breaker.state == "closed"


async def test_breaker_counts_a_failed_batch_once(jetstream, erp, tmp_path: Path):
    erp.answers.append(503)  # one failed request for 30 messages must not trip a threshold of 3
    await publish(jetstream.url, *(event(f"B{i}") for i in range(30)))
    async with running_worker(jetstream, erp, tmp_path, lanes=1) as worker:
        await until(lambda: len(erp.ledger) == 30, what="30 postings")
    assert worker.deliveries["legacy"].breaker.transitions == []
    assert worker.deliveries["legacy"].breaker.failures == 0


async def test_lost_answer_to_a_batch_is_checked_in_one_lookup(jetstream, erp, tmp_path: Path):
    erp.swallow = 1  # the whole batch lands, its answer is lost
    await publish(jetstream.url, *(event(f"LA{i}") for i in range(10)))
    async with running_worker(jetstream, erp, tmp_path, lanes=1):
        await until(lambda: len(deliveries(tmp_path)) == 10, what="10 deliveries")
    assert sorted(r["txn_id"] for r in erp.ledger) == sorted(f"LA{i}" for i in range(10))  # none twice
    assert erp.lookups == 1  # one ledger lookup for the whole unanswered batch
    assert {r[1] for r in deliveries(tmp_path)} == {"delivered"}


async def test_refused_batch_dead_letters_only_the_offending_posting(jetstream, erp, tmp_path: Path):
    erp.reject.add("BAD")
    await publish(jetstream.url, event("G1", lot="LOT"), event("BAD", lot="LOT"), event("G2", lot="LOT"))
    async with running_worker(jetstream, erp, tmp_path, lanes=1) as worker:
        await until(lambda: len(deliveries(tmp_path)) == 3, what="three copies handled")
    assert [r["txn_id"] for r in erp.ledger] == ["G1", "G2"]  # order of the lot kept while narrowing down
    outcomes = {r[0]: (r[1], r[2]) for r in deliveries(tmp_path)}
    assert outcomes["BAD"] == ("dead_lettered", "erp_rejected_422")
    assert worker.stats.dead_lettered == 1 and worker.stats.delivered == 2


async def test_two_copies_in_one_batch_post_once(jetstream, erp, tmp_path: Path):
    await publish(jetstream.url, event("TWICE"), event("OTHER"))
    await publish(jetstream.url, event("TWICE"), msg_id_suffix=":copy")  # past the jetstream's de-duplication
    async with running_worker(jetstream, erp, tmp_path, lanes=1):
        await until(lambda: len(deliveries(tmp_path)) == 3, what="three copies handled")
    assert erp.count("TWICE") == 1 and erp.count("OTHER") == 1
    assert sorted(r[1] for r in deliveries(tmp_path) if r[0] == "TWICE") == ["delivered", "duplicate_suppressed"]


def test_batches_fit_the_erp_rate_limit():
    limited = dict(SCENARIO, landscape=dict(SCENARIO["landscape"], erp={"rate_limit": "20/s"}))
    assert batch_cap(parse_scenario(limited), "legacy", 500) == 20
    assert batch_cap(parse_scenario(SCENARIO), "legacy", 500) == 500
    slow = dict(SCENARIO, landscape=dict(SCENARIO["landscape"], erp={"rate_limit": "0.1/s"}))
    assert batch_cap(parse_scenario(slow), "legacy", 500) == 1
