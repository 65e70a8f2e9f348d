"""Prometheus metrics of one gateway app (own registry, so several apps can live in one process)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram


@dataclass
class GatewayMetrics:
    """Counters and the PubAck latency histogram exposed at ``/metrics``."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.events = Counter("gateway_events_accepted", "Events stored in the broker", ["plant", "version"],
                              registry=r)
        self.duplicates = Counter("gateway_events_duplicate", "Events the broker already held (Nats-Msg-Id)",
                                  ["plant"], registry=r)
        self.requests = Counter("gateway_requests", "Requests by route and HTTP status", ["route", "status"],
                                registry=r)
        self.rejected = Counter("gateway_events_rejected", "Events refused, by reason", ["plant", "reason"],
                                registry=r)
        self.publish_seconds = Histogram(
            "gateway_publish_seconds", "Time from first publish to the last PubAck of a request",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r,
        )
