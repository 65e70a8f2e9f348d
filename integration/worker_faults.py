"""Injected acknowledgement loss for the live workers: the live form of the ``broker_redelivery`` fault.

JetStream delivers a message again when its ack does not arrive within ``ack_wait``. For the fault's
window the orchestrator writes ``{"ack_loss": share}`` to ``RUN_DIR/state/faults/worker.json``; the
worker re-reads the file about once a second (a restarted worker at start) and withholds that share
of its acks, so JetStream really redelivers those messages and the durable processed-key store has
to suppress the copies. When the consumer's own ack wait is longer than the scenario's (its floor,
``integration.workers.config.CONSUMER_ACK_WAIT_FLOOR``), a withheld ack is sent as a NAK delayed by the
scenario's ack wait instead, so the copy still comes back when the scenario says.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from kernel.files import WatchedNumber, write_text_atomic

T = TypeVar("T")


def fault_file(run_dir: Path) -> Path:
    """Where the orchestrator puts the workers' injected faults."""
    return Path(run_dir) / "state" / "faults" / "worker.json"


def write_ack_loss(run_dir: Path, share: float) -> None:
    """Set the share of acks the workers withhold (0 ends the fault); atomic, so a reader never sees half."""
    write_text_atomic(fault_file(run_dir), json.dumps({"ack_loss": share}))


class AckLoss:
    """The share of acks to withhold, as the fault file says."""

    def __init__(self, path: Path, rng: random.Random):
        self.path, self.rng = path, rng
        self.share = 0.0
        self.withheld = 0
        self._file = WatchedNumber(path, "ack_loss", 0.0, reader="worker")

    def refresh(self) -> None:
        """Re-read the file when it changed; a missing or unreadable file means no loss."""
        self.share = min(1.0, max(0.0, self._file.get()))

    def keep(self, items: Sequence[T]) -> list[T]:
        """The items whose ack goes out; the others are withheld (and counted)."""
        if self.share <= 0.0:
            return list(items)
        kept = [item for item in items if self.rng.random() >= self.share]
        self.withheld += len(items) - len(kept)
        return kept
