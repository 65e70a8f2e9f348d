"""A token bucket, sans-IO: the caller passes ``now`` (any clock, in seconds)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class TokenBucket:
    """``rate`` tokens per second up to ``capacity``; starts full."""

    rate: float
    capacity: float
    tokens: float = math.nan
    updated: float = math.nan

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.capacity <= 0:
            raise ValueError("a token bucket needs rate > 0 and capacity > 0")
        if math.isnan(self.tokens):
            self.tokens = self.capacity

    def take(self, n: float, now: float) -> float:
        """Take ``n`` tokens if available and return 0, else take none and return the wait in seconds.

        A request for more than ``capacity`` can never pass; its wait is ``math.inf``.
        """
        if math.isnan(self.updated):
            self.updated = now
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if n <= self.tokens:
            self.tokens -= n
            return 0.0
        if n > self.capacity:
            return math.inf
        return (n - self.tokens) / self.rate
