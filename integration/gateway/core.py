"""Ingestion without HTTP: authenticate a key, validate, rate-limit, publish, and say what to answer."""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

from integration.gateway.ingest import BodyError, parse_body, to_messages
from integration.gateway.jspub import MessageTooLarge
from integration.gateway.metrics import GatewayMetrics
from integration.gateway.publisher import BrokerUnavailable, Publisher
from integration.gateway.ratelimit import TokenBucket
from integration.gateway.settings import GatewaySettings
from integration.gateway.sources import NO_SHIFT, SourceWatch
from kernel.clock import ScaledClock

CORRELATION_HEADER = "X-Correlation-Id"

UNKNOWN_KEY = "X-Api-Key header missing or unknown; use the key issued for your plant"
Reply = tuple[int, dict[str, Any], dict[str, str]]


class IngestCore:
    """Ingestion without HTTP: authenticate, validate, rate-limit, publish; returns (status, body, headers)."""

    def __init__(self, settings: GatewaySettings, publisher: Publisher, metrics: GatewayMetrics):
        self.settings = settings
        self.publisher = publisher
        self.metrics = metrics
        self.key_to_plant = {key: plant for plant, key in settings.plant_keys.items()}
        self.capacity = settings.rate_limit * settings.burst_seconds
        self.buckets = {p: TokenBucket(settings.rate_limit, self.capacity) for p in settings.plant_keys}
        self.sources = SourceWatch(ScaledClock(settings.epoch, settings.speed), settings.clock_skew_bound,
                                   settings.source_window)

    def _reply(self, status: int, content: dict[str, Any], correlation: str, version: str,
               headers: dict[str, str] | None = None) -> Reply:
        self.metrics.requests.labels(f"/{version}/events", str(status)).inc()
        return status, content, {CORRELATION_HEADER: correlation, **(headers or {})}

    async def ingest_key(self, api_key: str, version: str, named_plant: str | None, body: bytes,
                         correlation: str, edge: tuple[str, str, float, str] | None = None) -> Reply:
        """:meth:`ingest` for a request still to be authenticated by its ``X-Api-Key``."""
        plant = self.key_to_plant.get(api_key)
        if plant is None:
            return self._reply(401, {"detail": UNKNOWN_KEY}, correlation or uuid.uuid4().hex, version,
                               {"WWW-Authenticate": "ApiKey"})
        return await self.ingest(plant, version, named_plant, body, correlation, edge)

    async def ingest(self, plant: str, version: str, named_plant: str | None, body: bytes,
                     correlation: str, edge: tuple[str, str, float, str] | None = None) -> Reply:
        """Store every event of ``body`` posted by ``plant``; 202 only once the broker acknowledged all.
        ``edge`` is (instance, edge clock, wall time the headers arrived, edge's last round trip) for
        :class:`SourceWatch`."""
        settings, metrics = self.settings, self.metrics
        correlation = correlation or uuid.uuid4().hex
        if named_plant is not None and named_plant != plant:
            metrics.rejected.labels(plant, "forbidden").inc()
            detail = f"plant: your key belongs to {plant}, not {named_plant}"
            return self._reply(403, {"detail": detail}, correlation, version)
        try:
            payloads = parse_body(body, version)
        except BodyError as exc:
            metrics.rejected.labels(plant, "invalid").inc()
            return self._reply(422, {"detail": exc.errors}, correlation, version)
        n = len(payloads)
        if n > settings.max_batch:
            metrics.rejected.labels(plant, "too_large").inc(n)
            detail = f"body: {n} events; send at most {settings.max_batch} per request"
            return self._reply(413, {"detail": detail}, correlation, version)
        wait = self.buckets[plant].take(n, time.monotonic())
        if wait:
            metrics.rejected.labels(plant, "rate_limited").inc(n)
            if math.isinf(wait):
                detail = f"body: {n} events exceed the rate-limit burst of {self.capacity:.0f}; split the batch"
                return self._reply(413, {"detail": detail}, correlation, version)
            limit = f"{settings.rate_limit:g} events/s"
            detail = f"rate limit of {limit} for {plant} exceeded; retry in {wait:.3f} s"
            return self._reply(429, {"detail": detail, "retry_after_s": wait}, correlation, version,
                               {"Retry-After": str(max(1, math.ceil(wait)))})
        shift, after = self.sources.observe(plant, *edge) if edge is not None else NO_SHIFT
        messages = to_messages(payloads, plant, shift, after)
        started = time.perf_counter()
        try:
            dupes = await self.publisher.publish(plant, messages, settings.publish_timeout)
        except MessageTooLarge as exc:
            metrics.rejected.labels(plant, "too_large").inc(n)
            return self._reply(413, {"detail": str(exc)}, correlation, version)
        except BrokerUnavailable as exc:
            metrics.rejected.labels(plant, "broker_unavailable").inc(n)
            content = {"detail": f"events not stored, retry: {exc}", "stored": exc.stored}
            return self._reply(503, content, correlation, version, {"Retry-After": "1"})
        metrics.publish_seconds.observe(time.perf_counter() - started)
        n_dup = sum(dupes)
        metrics.events.labels(plant, version).inc(n)
        if n_dup:
            metrics.duplicates.labels(plant).inc(n_dup)
        content = {"accepted": n, "duplicates": n_dup, "correlation_ids": [m.correlation_id for m in messages]}
        return self._reply(202, content, correlation, version)
