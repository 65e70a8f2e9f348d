"""Edge store-and-forward, vectorised over a plant's outbound stream.

The edge accepts each event, forwards it at once while the WAN is up, and buffers it while the WAN
(or the gateway behind it) is down; after an outage the backlog drains at ``drain_rate``. Forwarding
is a FIFO with service ``1/drain_rate`` whose customers become ready when the link is up, so the
closed-form Lindley recursion gives every forward time exactly. The buffer is bounded; when full:
``block`` delays acceptance until a slot frees (the source keeps the record), ``drop_newest`` and
``drop_oldest`` discard visibly (outcome ``rejected``, reason ``edge_overflow_dropped``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scenarios.generator import Windows
from scenarios.spec import EdgeSpec
from twins.erp import fifo_departures


@dataclass
class StoreAndForward:
    spec: EdgeSpec
    wan_down: Windows
    last_forward: float = float("-inf")
    buffered: np.ndarray = field(default_factory=lambda: np.empty(0))  # forward times still ahead
    dropped_total: int = 0
    peak_depth: int = 0

    def forward(self, t_accept: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For sorted acceptance times: (t_edge, t_forward, dropped mask)."""
        n = t_accept.size
        dropped = np.zeros(n, dtype=bool)
        if n == 0:
            return t_accept.copy(), t_accept.copy(), dropped
        step = 1.0 / self.spec.drain_rate
        ready = self.wan_down.end_of(t_accept)
        # Forward time = start of "service": max(ready_i, forward_{i-1} + step).
        fwd = fifo_departures(ready, np.full(n, step), self.last_forward + step) - step
        # Depth seen by each arrival: earlier events (carried or new) not yet forwarded.
        carried = self.buffered[self.buffered > t_accept[0]]
        ahead = np.concatenate([carried, fwd])
        depth = len(carried) + np.arange(n) - np.searchsorted(ahead, t_accept, side="right")
        depth = np.maximum(depth, 0)
        over = depth >= self.spec.buffer
        t_edge = t_accept.copy()
        if over.any():
            if self.spec.overflow == "block":
                # Accepted once the event `buffer` places ahead has left.
                idx = np.flatnonzero(over)
                slot = idx + len(carried) - self.spec.buffer
                t_edge[idx] = np.maximum(t_accept[idx], ahead[np.clip(slot, 0, ahead.size - 1)])
                fwd = np.maximum(fwd, t_edge)
            elif self.spec.overflow == "drop_newest":
                dropped = over
            else:  # drop_oldest: each overflowing arrival pushes out the oldest buffered event
                victims = np.flatnonzero(over) - self.spec.buffer
                dropped[victims[victims >= 0]] = True
                dropped[np.flatnonzero(over)[victims < 0]] = True
        self.dropped_total += int(dropped.sum())
        self.peak_depth = max(self.peak_depth, int(depth.max(initial=0)))
        kept = fwd[~dropped]
        if kept.size:
            self.last_forward = max(self.last_forward, float(kept[-1]))
        self.buffered = np.concatenate([carried, kept])
        return t_edge, fwd, dropped
