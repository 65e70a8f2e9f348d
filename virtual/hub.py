"""The integration hub of the virtual-time engine: mapping, routing, redelivery and idempotency,
retries with backoff under a circuit breaker, dead letters, and the ERP posting queues.

It applies the same :class:`~integration.delivery.RetryPolicy` arithmetic the live workers use,
element-wise over a window's batch. Windows are conservative: a message is served by an ERP only
once every message that could reach that ERP earlier is known, so FIFO order and hop times are exact.

Approximations, bounded and documented:
- the circuit breaker of a target counts failed requests as the live worker makes them: its ``LANES``
  lanes each send one request at a time, so the failures before it opens are the first ``LANES`` messages'
  attempts and their retries, each after the failed request's round trip (network both ways, the worker's
  request, the ERP's processing, as calibrated) and the backoff (mean jitter). It opens when the
  ``failure_threshold``-th of those answers (or where a calibrated live run's breaker opened), probes every
  ``cooldown`` on the grid of its opening and closes at the first probe reaching the ERP after the outage:
  a probe leaves the first waiting lane ``initial × U(0, 1)`` after its grid point (plus a calibrated
  lateness) and travels the worker's request hop (:mod:`virtual.breaker`). As in the live workers
  (integration/delivery.py), waiting for the breaker is not an attempt, but each failed probe is: it is
  charged to one message drawn at random among those waiting then, and dead-letters it with
  ``retries_exhausted`` when that was its last attempt; a failed probe's message waits for the next
  probe, and when the breaker closes every waiting message goes at once (the workers' lanes wake on it);
- an API rate limit is enforced by pacing (minimum spacing of calls) rather than by collecting 429s;
- a slow window multiplies the service time of calls that *arrive* inside it.
"""

from __future__ import annotations

import numpy as np

from integration.delivery import RetryPolicy
from integration.mapping import Mapped, PlantMapping
from kernel import trace
from kernel.routing import Routing
from scenarios.generator import ERP_KINDS, FaultPlan, Vocabulary
from scenarios.spec import Scenario
from twins.erp import ErpPostingServer, draw_latency
from virtual import batch as B
from virtual.breaker import LANES, BreakerTimeline
from virtual.load_replay import load_factor

OUT = B.OUTCOME_CODE
R = B.REASON_CODE
POOL_EXTRA = {"t_arrive": np.float64, "copy": np.bool_}
HELD_EXTRA = {"t_avail": np.float64, "span": np.int64, "copy": np.bool_}  # waiting for an open breaker


def lane_batch_ids(t_arrive: np.ndarray, lanes: int = LANES) -> np.ndarray:
    """The lane batch of each message (0, 1, ...): messages that reach the ERP at the same instant (those a
    closing breaker released) are split into ``lanes`` batches in arrival order; a message arriving alone
    is a batch of its own. ``t_arrive`` sorted."""
    n = t_arrive.size
    start = np.concatenate([[True], t_arrive[1:] != t_arrive[:-1]])[:n]
    run = np.cumsum(start) - 1
    first = np.flatnonzero(start)
    size = np.diff(np.append(first, n))[run]
    chunk = (np.arange(n) - first[run]) * lanes // size
    group = np.concatenate([[True], (run[1:] != run[:-1]) | (chunk[1:] != chunk[:-1])])[:n]
    return np.cumsum(group) - 1


def lane_batches(t_arrive: np.ndarray, posted: np.ndarray, lanes: int = LANES) -> np.ndarray:
    """Acceptance times: a lane batch (:func:`lane_batch_ids`) is accepted when its last posting is served."""
    ids = lane_batch_ids(t_arrive, lanes)
    heads = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    return np.maximum.reduceat(posted, heads)[ids] if ids.size else posted


class IntegrationHub:
    """One replication's integration layer and ERP systems."""

    def __init__(self, scenario: Scenario, vocab: Vocabulary, faults: FaultPlan, rng: np.random.Generator):
        integ = scenario.landscape.integration
        self.scenario = scenario
        self.vocab = vocab
        self.faults = faults
        self.rng = rng
        self.policy = RetryPolicy.from_spec(integ.retry)
        self.idempotency = integ.idempotency
        self.broker = integ.broker
        self.hops = integ.hops
        self.load = integ.replay_load  # the live chain's load over time (virtual/load_replay.py)
        plants = scenario.landscape.all_plants
        self.mappings = [PlantMapping.from_spec(p, scenario.landscape.items) for p in plants]
        self.routing = Routing.of(scenario)
        self.erps = [ErpPostingServer(scenario.erp_for(k), faults.erp_slow[k], rng) for k in ERP_KINDS]
        self.network = np.array([scenario.erp_for(k).network_latency for k in ERP_KINDS])
        cb = integ.circuit_breaker
        self.breakers = [BreakerTimeline.of(faults.erp_outage[k], cb.failure_threshold, cb.cooldown, self.policy,
                                            answer=self.network[c] + self.hops.erp.mean,
                                            request=self.network[c] + self.hops.broker_to_erp.mean,
                                            probe=self.hops.breaker_probe.mean,
                                            replayed=tuple(cb.replay_openings.get(k, ())))
                         for c, k in enumerate(ERP_KINDS)]
        self._map_cache: dict[int, tuple[int, float, int, int]] = {}
        self.pool = B.empty(B.ALL_COLUMNS | POOL_EXTRA)
        self.held = B.empty(B.ALL_COLUMNS | HELD_EXTRA)
        self.probed: list[dict[int, float]] = [{} for _ in ERP_KINDS]  # outage -> last probe charged

    # ------------------------------------------------------------------------------------ mapping
    def _map(self, rows: B.Batch) -> np.ndarray:
        """Rewrite item/qty/unit to canonical in place; return the dead-letter reason code per row."""
        key = rows["plant"].astype(np.int64) << 32 | rows["item"].astype(np.int64) << 16 | rows["unit"]
        uniq, inverse = np.unique(key, return_inverse=True)
        table = np.array([self._map_key(int(k)) for k in uniq], dtype=float).reshape(-1, 4)
        item, factor, unit, reason = (table[inverse, i] for i in range(4))
        ok = reason == 0
        rows["item"] = np.where(ok, item, rows["item"]).astype(np.int16)
        rows["unit"] = np.where(ok, unit, rows["unit"]).astype(np.int16)
        rows["qty"] = np.where(ok, rows["qty"] * factor, rows["qty"])
        return reason.astype(np.int8)

    def _map_key(self, key: int) -> tuple[int, float, int, int]:
        if key not in self._map_cache:
            plant, item, unit = key >> 32, (key >> 16) & 0xFFFF, key & 0xFFFF
            result = self.mappings[plant].map_one(self.vocab.items[item], 1.0, self.vocab.units[unit])
            if isinstance(result, Mapped):
                value = (self.vocab.item(result.item), result.qty, self.vocab.unit(result.unit), 0)
            else:
                value = (item, 1.0, unit, R[result.reason])
            self._map_cache[key] = value
        return self._map_cache[key]

    # ----------------------------------------------------------------------------------- delivery
    def _attempts(self, rows: B.Batch, a: np.ndarray, attempts: np.ndarray | None = None,
                  first: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Retry every message (``a``: its time at the ERP) until an attempt finds its ERP up or it meets
        an open breaker: (time at the ERP, attempts, dead, held by the breaker, outage of that breaker).
        ``first``: ``a`` are first attempts (they can open the breaker)."""
        erp = rows["target"]
        a = a.copy()
        attempts = np.zeros(a.size, dtype=np.int32) if attempts is None else attempts.copy()
        dead = np.zeros(a.size, dtype=bool)
        parked = np.zeros(a.size, dtype=bool)
        span = np.full(a.size, -1, dtype=np.int64)
        active = np.ones(a.size, dtype=bool)
        if first:
            for code, breaker in enumerate(self.breakers):
                mine = erp == code
                breaker.note_failures(a[mine][breaker.outages.contains(a[mine])])
        spans = [(*b.open_spans(), b.open_keys()) for b in self.breakers]
        while active.any():
            idx = np.flatnonzero(active)
            t = a[idx]
            code = erp[idx]
            down = np.zeros(idx.size, dtype=bool)
            held = np.zeros(idx.size, dtype=bool)
            outage = np.full(idx.size, -1, dtype=np.int64)
            for c, breaker in enumerate(self.breakers):
                sel = code == c
                down[sel] = breaker.outages.contains(t[sel])
                opened, close, keys = spans[c]
                if opened.size:
                    k = np.searchsorted(opened, t[sel], side="right") - 1
                    inside = (k >= 0) & (t[sel] < close[np.clip(k, 0, None)])
                    held[sel] = inside
                    outage[sel] = np.where(inside, keys[np.clip(k, 0, None)], -1)
            # Breaker open: wait for it (not an attempt); the probes are charged in _probes.
            parked[idx[held]] = True
            span[idx[held]] = outage[held]
            active[idx[held]] = False
            u = self.rng.random(idx.size)
            tried = ~held
            attempts[idx[tried]] += 1
            ok = tried & ~down
            failed = tried & down
            active[idx[ok]] = False
            give_up = failed & (attempts[idx] >= self.policy.max_attempts)
            dead[idx[give_up]] = True
            active[idx[give_up]] = False
            retry = failed & ~give_up
            a[idx[retry]] = t[retry] + self.policy.delay(attempts[idx[retry]], u[retry])
        return a, attempts, dead, parked, span

    def _probes(self, until: float) -> tuple[B.Batch, B.Batch]:
        """Charge the failed half-open probes before ``until`` to the messages waiting for the breaker;
        return (dead-lettered, released): released are the waiting messages of every breaker that closed
        before ``until``, with their time at the ERP in ``t_avail``."""
        held = self.held
        n = B.size(held)
        if n == 0:
            return B.empty(B.ALL_COLUMNS), B.empty(B.ALL_COLUMNS | HELD_EXTRA)
        gone = np.zeros(n, dtype=bool)
        dead_at = np.full(n, np.nan)
        released = np.zeros(n, dtype=bool)
        for c, breaker in enumerate(self.breakers):
            for w in np.unique(held["span"][held["target"] == c]):
                opened, close = breaker.span(int(w))
                sel = np.flatnonzero((held["target"] == c) & (held["span"] == w))
                probe = self.probed[c].get(int(w), opened + breaker.lag) + breaker.cooldown
                while probe < min(close, until):  # every probe before `close` meets the outage
                    waiting = sel[(held["t_avail"][sel] <= probe) & ~gone[sel]]
                    if waiting.size:
                        i = waiting[self.rng.integers(waiting.size)]
                        held["attempts"][i] += 1
                        if self.policy.gives_up_after(int(held["attempts"][i])):
                            gone[i], dead_at[i] = True, probe
                        else:
                            held["t_avail"][i] = probe  # the breaker paces it: it waits for the next probe
                    self.probed[c][int(w)] = probe
                    probe += breaker.cooldown
                if close < until:  # closed by a probe: every waiting message is due at once
                    out = sel[~gone[sel]]
                    drain = self.hops.lane_batch.mean * out.size  # building and handling the lane batches
                    held["t_avail"][out], released[out] = np.maximum(held["t_avail"][out], close + drain), True
        dead = B.take(held, gone)
        dead.update(outcome=np.full(B.size(dead), OUT[trace.DEAD_LETTERED], np.int8),
                    reason=np.full(B.size(dead), R[trace.REASON_RETRIES_EXHAUSTED], np.int8),
                    t_acked=dead_at[gone])  # given up at its last failed probe
        for extra in HELD_EXTRA:
            dead.pop(extra)
        out = B.take(held, released)
        self.held = B.take(held, ~gone & ~released)
        return dead, out

    def _enqueue(self, rows: B.Batch, at_erp: np.ndarray, is_copy: np.ndarray, attempts: np.ndarray | None,
                 first: bool, finished: list[B.Batch]) -> None:
        """Deliver ``rows`` (times at the ERP) as far as this window can: dead letters to ``finished``,
        messages meeting an open breaker to the held set, the others to the ERP pool."""
        arrive, attempts, dead, parked, span = self._attempts(rows, at_erp, attempts, first)
        rows["attempts"] = attempts
        if dead.any():
            lost = B.take(rows, dead)
            lost.update(outcome=np.full(dead.sum(), OUT[trace.DEAD_LETTERED], np.int8),
                        reason=np.full(dead.sum(), R[trace.REASON_RETRIES_EXHAUSTED], np.int8),
                        t_acked=arrive[dead])  # given up at its last failed attempt
            finished.append(lost)
        if parked.any():
            wait = B.take(rows, parked)
            wait.update(t_avail=arrive[parked], span=span[parked], copy=is_copy[parked])
            self.held = B.concat([self.held, wait])
        go = ~dead & ~parked
        alive = B.take(rows, go)
        alive["t_arrive"] = arrive[go]
        alive["copy"] = is_copy[go]
        self.pool = B.concat([self.pool, alive])

    def _release(self, until: float, finished: list[B.Batch]) -> None:
        """Probes and closing breakers before ``until``; the released messages go on (until none is left)."""
        while True:
            dead, released = self._probes(until)
            if B.size(dead):
                finished.append(dead)
            if not B.size(released):
                return
            at_erp, is_copy = released.pop("t_avail"), released.pop("copy")
            released.pop("span")
            self._enqueue(released, at_erp, is_copy, released["attempts"], False, finished)

    def _route(self, rows: B.Batch) -> np.ndarray:
        return self.routing.codes(rows["plant"], rows["t_created"])  # routed on t_created: kernel/routing.py

    def _copies(self, rows: B.Batch) -> B.Batch:
        """Broker redeliveries: some messages arrive a second time after the ack wait."""
        rate = self.faults.redelivery.value_at(rows["t_broker"], self.broker.redelivery_rate)
        twice = self.rng.random(rate.size) < rate
        copies = B.take(rows, twice)  # same stored message (same t_broker), handed out once more
        copies["reason"] = np.full(B.size(copies), R[trace.REASON_REDELIVERY], dtype=np.int8)
        return copies

    # --------------------------------------------------------------------------------------- step
    def step(self, window_end: float, incoming: list[tuple[int, B.Batch]]) -> B.Batch:
        """Take the plants' outbound batches of a window; return the rows it finished (the delivered
        ones are the ERP's postings: :func:`virtual.batch.postings`)."""
        rows = B.concat([B.with_results(b, plant=p) for p, b in incoming])
        finished: list[B.Batch] = []
        if B.size(rows):
            rows["target"] = self._route(rows).astype(np.int8)
            reason = self._map(rows)
            bad = reason != 0
            if bad.any():
                dlq = B.take(rows, bad)  # the worker dead-letters an unmappable message as it takes it
                dlq.update(outcome=np.full(bad.sum(), OUT[trace.DEAD_LETTERED], np.int8), reason=reason[bad],
                           t_acked=dlq["t_broker"].copy())
                finished.append(dlq)
            good = B.take(rows, ~bad)
            copies = self._copies(good)
            if self.idempotency and B.size(copies):
                # The processed-key store (per-key ordering) acknowledges the copy and posts nothing:
                # nothing delivered (t_delivered NaN), acked when handed out again (kernel/trace.py).
                redelivered = copies["t_broker"] + self.broker.ack_wait
                copies.update(outcome=np.full(B.size(copies), OUT[trace.DUPLICATE_SUPPRESSED], np.int8),
                              t_acked=redelivered)
                finished.append(copies)
                copies = B.empty(B.ALL_COLUMNS)
            moving = B.concat([good, copies])
            is_copy = moving["reason"] == R[trace.REASON_REDELIVERY]
            at_erp = (moving["t_broker"] + is_copy * self.broker.ack_wait + self.network[moving["target"]]
                      + load_factor(self.load, moving["t_broker"])
                      * draw_latency(self.hops.broker_to_erp, self.rng, B.size(moving)))
            self._enqueue(moving, at_erp, is_copy, None, True, finished)
        self._release(window_end, finished)
        finished.append(self._serve(window_end))
        return B.concat(finished)

    def _serve(self, until: float) -> B.Batch:
        """Post every pooled message that reaches its ERP before ``until``, in arrival order."""
        due = self.pool["t_arrive"] < until
        ready = B.take(self.pool, due)
        self.pool = B.take(self.pool, ~due)
        done: list[B.Batch] = []
        for code, erp in enumerate(self.erps):
            sel = ready["target"] == code
            if not sel.any():
                continue
            part = B.take(ready, sel)
            order = np.argsort(part["t_arrive"], kind="stable")
            part = B.take(part, order)
            busy_until = erp.free_at
            posted = erp.serve(part["t_arrive"])
            # The ERP's processing beyond its configured service (calibrated from a live run, where it is
            # spread over a worker's batch): a delay of the answer, not queued in the posting server, drawn
            # once per lane batch (the live ERP handles and commits a batch request once).
            ids = lane_batch_ids(part["t_arrive"])
            extra = (draw_latency(self.hops.erp, self.rng, int(ids[-1]) + 1 if ids.size else 0)[ids]
                     * load_factor(self.load, part["t_arrive"]))
            part["t_delivered"] = lane_batches(part["t_arrive"], posted) + extra
            # FIFO: service starts when the copy is there and the one before it has left.
            part["t_erp_arrival"] = part["t_arrive"]
            part["t_service_start"] = np.maximum(part["t_arrive"], np.concatenate([[busy_until], posted[:-1]]))
            # Complete as the source sees it (kernel/trace.py): the ERP's acceptance recorded, and for a
            # goods receipt of a lot under inspection, its quality disposition too.
            part["t_acked"] = np.fmax(part["t_delivered"], part["t_gate"])
            part["outcome"] = np.full(posted.size, OUT[trace.DELIVERED], np.int8)
            done.append(part)
        rows = B.concat(done, B.ALL_COLUMNS | POOL_EXTRA)
        rows.pop("copy", None)
        rows.pop("t_arrive", None)
        return rows

    def finish(self) -> B.Batch:
        """Serve everything still pooled or held (the caller marks what lands after the run's end in flight)."""
        finished: list[B.Batch] = []
        self._release(np.inf, finished)
        return B.concat([*finished, self._serve(np.inf)])

    def breaker_log(self) -> list[dict]:
        return [{"target": B.TARGETS[c], "t": t, "state": s}
                for c, b in enumerate(self.breakers) for t, s in b.transitions()]
