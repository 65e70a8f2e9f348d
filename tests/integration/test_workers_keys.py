"""The durable processed-key store: survives reopening, tracks unanswered posting intents."""

from __future__ import annotations

from pathlib import Path

from integration.delivery import CircuitBreaker, Delivery, RetryPolicy, Suppress
from integration.processed_keys import SqliteProcessedKeys


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
