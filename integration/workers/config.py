"""What one worker process is told: its configuration, the ERP URLs of the command line, its counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from integration.broker import EVENTS_SUBJECTS, event_subject
from kernel.routing import Routing
from scenarios.spec import Scenario

CONSUMER = "erp-workers"
ACK_WAIT_FLOOR = 0.5  # wall seconds: a shorter ack wait would redeliver on a scheduling hiccup
# Wall seconds: the consumer's own ack wait is at least this. Below it a worker starved of CPU for a few
# hundred milliseconds (a shared machine, a 1,000-copy batch) missed its in-progress acks, and a fifth of
# a backlog came back as redeliveries, each costing the broker a delivery and the worker a suppression.
# The scenario's shorter ack wait still times an injected ack loss (a NAK with that delay, outcomes.py).
CONSUMER_ACK_WAIT_FLOOR = 3.0


@dataclass
class WorkerConfig:
    """Everything one worker process needs; ``erp_urls`` maps ERP kind to base URL."""

    nats_url: str
    scenario: Scenario
    erp_urls: dict[str, str]
    run_dir: Path
    epoch: float
    speed: float
    lanes: int = 2
    fetch_batch: int = 1000  # messages per pull request, and the largest batch a lane handles at once
    fetch_wait: float = 0.5  # wall seconds a pull request lingers when the stream is empty
    # Fetched-but-unacknowledged messages JetStream allows the consumer: this bounds what the lanes hold.
    # 0: one batch per lane plus one pull request in flight, enough to keep every lane busy. More only
    # waits in the lanes, where the heartbeat must keep each copy alive with an in-progress ack per message
    # (broker and worker work per event) and a starved process lets copies expire into redeliveries.
    max_ack_pending: int = 0
    # Wall seconds; None: the scenario's broker.ack_wait (scenario seconds) at 1/speed, at least
    # ACK_WAIT_FLOOR. Held messages are kept alive with in-progress acks every third of it.
    ack_wait: float | None = None
    seed: int = 0
    consumer: str = CONSUMER
    # Worker ``partition`` (1-based) of ``partitions`` worker processes: it consumes only its plants' events.
    partition: int = 1
    partitions: int = 1

    @property
    def consumer_ack_wait(self) -> float:
        """Wall seconds JetStream waits for an ack before redelivering (what a killed worker's copies wait)."""
        return max(float(self.ack_wait or 0.0), CONSUMER_ACK_WAIT_FLOOR)

    def __post_init__(self) -> None:
        if self.max_ack_pending == 0:
            self.max_ack_pending = self.fetch_batch * (self.lanes + 1)
        if self.ack_wait is None:
            self.ack_wait = max(ACK_WAIT_FLOOR, self.scenario.landscape.integration.broker.ack_wait / self.speed)
        missing = Routing.of(self.scenario).kinds() - set(self.erp_urls)
        if missing:
            raise ValueError(f"--erp: the scenario routes plants to {', '.join(sorted(missing))} but no URL "
                             f"was given; add e.g. --erp {sorted(missing)[0]}=http://127.0.0.1:PORT")
        plants = [p.id for p in self.scenario.landscape.all_plants]
        if not 1 <= self.partition <= self.partitions:
            raise ValueError(f"--partition {self.partition}: must be between 1 and --partitions {self.partitions}")
        if self.partitions > len(plants):
            raise ValueError(f"--partitions {self.partitions}: the scenario has {len(plants)} plant(s) and a worker "
                             f"partition holds whole plants; use at most --partitions {len(plants)}")
        if self.fetch_batch < 1 or self.lanes < 1 or self.max_ack_pending < self.fetch_batch:
            raise ValueError("worker: lanes and fetch_batch must be >= 1 and max_ack_pending >= fetch_batch")


    @property
    def consumer_name(self) -> str:
        """The durable consumer: ``consumer`` alone, or ``<consumer>-<partition>`` when partitioned."""
        return self.consumer if self.partitions == 1 else partition_consumer(self.consumer, self.partition)

    @property
    def filter_subjects(self) -> list[str]:
        """Subjects this worker consumes: the whole stream, or its partition's plants."""
        if self.partitions == 1:
            return [EVENTS_SUBJECTS]
        plants = [p.id for p in self.scenario.landscape.all_plants]
        return partition_subjects(plants, self.partition, self.partitions)


def partition_consumer(consumer: str, partition: int) -> str:
    """Durable consumer name of worker partition ``partition`` (1-based)."""
    return f"{consumer}-{partition}"


def partition_subjects(plants: list[str], partition: int, partitions: int) -> list[str]:
    """The subjects of partition ``partition`` (1-based) of ``partitions``: whole plants, dealt out in
    sorted order (every process derives the same split from the scenario, and each partition gets a
    near-equal share of plants)."""
    mine = sorted(plants)[partition - 1::partitions]
    return [event_subject(p, ">") for p in mine]


@dataclass
class WorkerStats:
    """What a worker did so far (printed as JSON when it stops)."""

    delivered: int = 0
    suppressed: int = 0
    dead_lettered: int = 0
    failed_attempts: int = 0  # failed ERP requests (one per batch)
    batches: int = 0  # ERP batch requests answered 201
    acks_withheld: int = 0  # injected ack loss (broker_redelivery fault)
    by_target: dict[str, int] = field(default_factory=dict)


def parse_erp_urls(values: list[str]) -> dict[str, str]:
    """``["legacy=http://..", "cloud=http://.."]`` → mapping; raises ValueError naming the bad value."""
    urls: dict[str, str] = {}
    for value in values:
        kind, sep, url = value.partition("=")
        if not sep or kind not in ("legacy", "cloud") or not url.startswith(("http://", "https://")):
            raise ValueError(f"--erp {value!r}: write KIND=URL with KIND legacy or cloud, "
                             "e.g. --erp legacy=http://127.0.0.1:8081")
        urls[kind] = url
    return urls


def batch_cap(scenario: Scenario, kind: str, limit: int) -> int:
    """Postings per request to ``kind``: ``limit``, or the ERP's API burst (its rate limit's bucket
    capacity) when that is smaller -- a larger batch could never pass the rate limit."""
    rate = scenario.erp_for(kind).rate_limit
    return limit if not rate else max(1, min(limit, int(max(1.0, rate))))
