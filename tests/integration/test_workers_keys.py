"""The durable processed-key store: survives reopening, tracks unanswered posting intents."""

from __future__ import annotations

from pathlib import Path

from integration.delivery import CircuitBreaker, Delivery, RetryPolicy, Suppress
from integration.processed_keys import SqliteProcessedKeys
from integration.worker_keys import BatchProcessedKeys


def test_keys_survive_reopen_and_intents_stay_uncertain(tmp_path: Path):
    path = tmp_path / "state" / "worker-keys.sqlite"
    with SqliteProcessedKeys(path) as keys:
        keys.add("A")
        keys.begin("B")  # request sent, process dies before the answer
        keys.begin("C")
        keys.abandon("C")  # refused for sure: forgotten
        assert "A" in keys and "B" not in keys
    with SqliteProcessedKeys(path) as keys:
        assert "A" in keys and len(keys) == 1
        assert keys.uncertain("B") and not keys.uncertain("A") and not keys.uncertain("C")
        keys.add("B")
        assert "B" in keys and not keys.uncertain("B")


def test_delivery_suppresses_keys_from_an_earlier_process(tmp_path: Path):
    path = tmp_path / "keys.sqlite"
    with SqliteProcessedKeys(path) as keys:
        Delivery(RetryPolicy(), CircuitBreaker(), keys).succeeded("T1", 1, now=0.0)
    with SqliteProcessedKeys(path) as keys:
        assert Delivery(RetryPolicy(), CircuitBreaker(), keys).offer("T1", 1, now=5.0) == Suppress("T1")


def test_batch_intents_become_uncertain_keys_only_when_unanswered_or_left_behind(tmp_path: Path):
    path = tmp_path / "keys.sqlite"
    with BatchProcessedKeys(path) as keys:
        ok = keys.begin_batch(["A1", "A2"], 1.0)
        keys.add_many(["A1", "A2"], 2.0)
        keys.answered(ok)  # landed and marked done
        refused = keys.begin_batch(["R1"], 3.0)
        keys.answered(refused)  # refused for sure: nothing to remember
        lost = keys.begin_batch(["L1", "L2"], 4.0)
        keys.unanswered(lost)  # timed out: may or may not have landed
        keys.begin_batch(["D1", "A1"], 5.0)  # the process dies before the answer
        assert keys.states(["A1", "L1", "L2", "R1", "D1"]) == {
            "A1": "done", "L1": "posting", "L2": "posting", "D1": "posting"}
    with BatchProcessedKeys(path) as keys:
        assert keys.states(["A1", "A2", "L1", "R1", "D1"]) == {
            "A1": "done", "A2": "done", "L1": "posting", "D1": "posting"}
        assert keys.uncertain("D1") and not keys.uncertain("A1") and not keys.uncertain("R1")


def test_an_open_intent_makes_its_keys_uncertain_in_the_same_process(tmp_path: Path):
    with BatchProcessedKeys(tmp_path / "keys.sqlite") as keys:
        keys.begin_batch(["X1", "X2"], 1.0)  # the request went out; the batch then failed (e.g. disk full)
        assert keys.states(["X1", "X2", "X3"]) == {"X1": "posting", "X2": "posting"}
        keys.add_many(["X1"], 2.0)  # marked done before the intent was cleared: done wins
        assert keys.states(["X1", "X2"]) == {"X1": "done", "X2": "posting"}
