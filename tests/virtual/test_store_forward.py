"""Edge store-and-forward: pass-through, buffering across WAN outages, the bound and its policies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scenarios.generator import Windows
from scenarios.spec import EdgeSpec
from virtual.store_forward import StoreAndForward


def _edge(outages=(), buffer: int = 1_000_000, overflow: str = "block", drain: float = 1.0,
          retry: tuple[float, float] = (0.5, 0.5)) -> StoreAndForward:
    """An edge whose posting attempts during an outage are ``retry`` (first wait, longest wait) apart: the
    default's grid lands on every half second, so a backlog leaves when an outage ending there heals."""
    down = Windows(np.array([s for s, _ in outages], float), np.array([e for _, e in outages], float),
                   np.ones(len(outages)))
    spec = EdgeSpec(buffer=buffer, overflow=overflow, drain_rate=drain, retry_initial=retry[0], retry_max=retry[1])
    return StoreAndForward(spec, down)


def test_without_outage_events_pass_straight_through():
    edge = _edge(drain=10.0)
    t = np.array([0.0, 1.0, 1.5, 7.25, 100.0])
    t_edge, fwd, dropped = edge.forward(t)
    assert t_edge.tolist() == t.tolist()
    assert fwd == pytest.approx(t, abs=1e-9)
    assert not dropped.any() and edge.dropped_total == 0


def test_without_outage_a_burst_passes_straight_through_uncapped():
    """The drain rate paces a backlog only: with the link up a burst above it is not capped or spaced."""
    edge = _edge(drain=4.0)
    t = np.array([10.0, 10.0, 10.0, 10.1, 20.0])
    _, fwd, _ = edge.forward(t)
    assert fwd.tolist() == t.tolist()
    assert edge.last_forward == float("-inf")  # nothing drained


def test_arrivals_during_a_drain_queue_behind_it_then_pass_straight_through():
    edge = _edge(outages=[(100.0, 200.0)], drain=1.0)
    t = np.array([110.0, 120.0, 130.0, 200.5, 201.0, 202.9, 203.0, 203.2, 210.0, 210.1])
    _, fwd, _ = edge.forward(t)
    # Backlog of three leaves at 200, 201, 202; 200.5 and 201 arrive while it waits and queue (203, 204);
    # 202.9 and 203 and 203.2 still find a queue (205, 206, 207); 210 finds it empty and passes through.
    assert fwd.tolist() == [200.0, 201.0, 202.0, 203.0, 204.0, 205.0, 206.0, 207.0, 210.0, 210.1]
    assert edge.last_forward == 207.0


def test_the_backlog_leaves_at_the_edges_first_retry_after_the_link_heals():
    """As the live edge's poster: from its first failed post (110) it retries after 1, 2, 4 ... s, then every
    60 s (111, 113, 117, 125, 141, 173, 233, 293, 353, 413): the outage ends at 400, the backlog leaves at 413."""
    edge = _edge(outages=[(100.0, 400.0)], drain=1.0, retry=(1.0, 60.0))
    assert edge.forward(np.array([110.0, 120.0]))[1].tolist() == [413.0, 414.0]
    # The schedule belongs to the outage: a later window's events wait for the same attempt.
    assert edge.forward(np.array([399.0, 420.0]))[1].tolist() == [415.0, 420.0]


def test_a_replayed_resume_sets_when_the_backlog_leaves():
    down = Windows(np.array([100.0]), np.array([400.0]), np.ones(1))
    edge = StoreAndForward(EdgeSpec(drain_rate=1.0), down, resumes=(42.0,))
    assert edge.forward(np.array([110.0, 120.0]))[1].tolist() == [442.0, 443.0]


_times = st.lists(st.floats(0, 300, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=80, deadline=None)
@given(_times, st.floats(0, 250), st.floats(0.5, 60), st.sampled_from([0.5, 3.0, 50.0]))
def test_closed_form_equals_the_event_by_event_replay(times, start, length, drain):
    t = np.sort(np.array(times))
    closed = _edge([(start, start + length)], drain=drain)._vectorised(t, np.empty(0))
    replay = _edge([(start, start + length)], drain=drain)._event_by_event(t, np.empty(0))
    for a, b in zip(closed, replay, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_wan_outage_buffers_and_forwards_after_its_end_in_fifo_order_at_the_drain_rate():
    edge = _edge(outages=[(100.0, 200.0)], drain=2.0)
    t = np.array([50.0, 110.0, 120.0, 150.0, 199.0, 200.2, 260.0])
    t_edge, fwd, dropped = edge.forward(t)
    assert t_edge.tolist() == t.tolist()  # the edge accepts everything; only forwarding waits
    assert fwd == pytest.approx([50.0, 200.0, 200.5, 201.0, 201.5, 202.0, 260.0])
    assert np.all(np.diff(fwd) > 0)
    assert not dropped.any()


def test_backlog_is_carried_across_calls():
    edge = _edge(outages=[(0.0, 100.0)], drain=1.0)
    edge.forward(np.arange(1.0, 11.0))  # ten events wait for t=100
    _, fwd, _ = edge.forward(np.array([101.5, 150.0]))
    assert fwd.tolist() == [110.0, 150.0]  # behind the ten buffered events (100..109)


_accepts = st.lists(st.floats(0, 500, allow_nan=False), min_size=1, max_size=80)


@settings(max_examples=60, deadline=None)
@given(_accepts, st.integers(0, 80), st.floats(0, 400), st.floats(1, 150), st.sampled_from([2, 5, 10_000]))
def test_split_calls_equal_one_call(accepts, cut, start, length, buffer):
    t = np.sort(np.array(accepts))
    cut = min(cut, t.size)
    whole = _edge([(start, start + length)], buffer=buffer, drain=0.5).forward(t)
    edge = _edge([(start, start + length)], buffer=buffer, drain=0.5)
    parts = [edge.forward(t[:cut]), edge.forward(t[cut:])]
    for i in range(3):
        np.testing.assert_allclose(np.concatenate([p[i] for p in parts]), whole[i])


def test_block_delays_acceptance_until_a_slot_frees():
    edge = _edge(outages=[(0.0, 10.0)], buffer=3, overflow="block", drain=1.0)
    t = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    t_edge, fwd, dropped = edge.forward(t)
    assert not dropped.any() and edge.dropped_total == 0
    assert fwd.tolist() == [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    # The 4th event enters when the 1st leaves (t=10), the 5th when the 2nd leaves, ...
    assert t_edge.tolist() == [1.0, 2.0, 3.0, 10.0, 11.0, 12.0]
    assert np.all(fwd >= t_edge)


def test_block_never_holds_more_than_the_bound_in_the_buffer():
    edge = _edge(outages=[(0.0, 10.0)], buffer=3, overflow="block", drain=1.0)
    t_edge, fwd, _ = edge.forward(np.arange(1.0, 10.0))
    # Occupancy right after each acceptance: accepted so far minus forwarded so far.
    occupancy = [int(np.sum(t_edge <= x) - np.sum(fwd <= x)) for x in t_edge]
    assert max(occupancy) <= 3
    assert edge.peak_depth <= 3, f"peak_depth {edge.peak_depth} exceeds the buffer of 3"


def test_drop_newest_keeps_the_first_events_and_counts_the_rest():
    edge = _edge(outages=[(0.0, 10.0)], buffer=3, overflow="drop_newest", drain=1.0)
    t_edge, fwd, dropped = edge.forward(np.arange(1.0, 10.0))
    assert dropped.tolist() == [False] * 3 + [True] * 6
    assert edge.dropped_total == 6
    assert fwd[~dropped].tolist() == [10.0, 11.0, 12.0]


def test_drop_newest_accepts_again_once_the_backlog_drains():
    """After the outage the buffer frees a slot per forward; new events must not be dropped then."""
    edge = _edge(outages=[(0.0, 10.0)], buffer=3, overflow="drop_newest", drain=1.0)
    t = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.5, 11.5, 30.0])
    _, fwd, dropped = edge.forward(t)
    # Kept 1, 2, 3 leave at 10, 11, 12. At 10.5 two are buffered, at 11.5 two again: both fit.
    assert dropped.tolist() == [False] * 3 + [True] * 6 + [False] * 3
    assert edge.dropped_total == 6
    # Dropped events take no drain slot: the late arrivals follow the kept ones directly.
    assert fwd[~dropped].tolist() == [10.0, 11.0, 12.0, 13.0, 14.0, 30.0]


def test_drop_oldest_keeps_the_newest_events():
    edge = _edge(outages=[(0.0, 10.0)], buffer=3, overflow="drop_oldest", drain=1.0)
    _, fwd, dropped = edge.forward(np.arange(1.0, 10.0))
    assert dropped.tolist() == [True] * 6 + [False] * 3
    assert edge.dropped_total == 6
    assert fwd[~dropped].tolist() == [10.0, 11.0, 12.0]


def test_drop_oldest_accepts_again_once_the_backlog_drains():
    edge = _edge(outages=[(0.0, 10.0)], buffer=3, overflow="drop_oldest", drain=1.0)
    t = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.5, 11.5])
    _, fwd, dropped = edge.forward(t)
    assert dropped.tolist() == [True] * 6 + [False] * 5
    assert fwd[~dropped].tolist() == [10.0, 11.0, 12.0, 13.0, 14.0]


@pytest.mark.parametrize(("policy", "victim"), [("drop_newest", 50), ("drop_oldest", 0)])
def test_drops_only_happen_when_the_buffer_is_full(policy, victim):
    edge = _edge(outages=[(0.0, 100.0)], buffer=50, overflow=policy, drain=10.0)
    _, _, dropped = edge.forward(np.linspace(1.0, 99.0, 51))
    assert np.flatnonzero(dropped).tolist() == [victim]
    assert edge.dropped_total == 1


@pytest.mark.parametrize("policy", ["drop_newest", "drop_oldest"])
def test_overflow_in_a_later_call_is_dropped_visibly_and_counted(policy):
    edge = _edge(outages=[(0.0, 100.0)], buffer=50, overflow=policy, drain=10.0)
    _, _, dropped = edge.forward(np.linspace(1.0, 98.0, 50))
    assert not dropped.any() and edge.dropped_total == 0
    _, _, dropped = edge.forward(np.array([99.0, 99.5]))
    # Events returned by an earlier call cannot be taken back, so the new arrivals are the ones dropped.
    assert dropped.tolist() == [True, True]
    assert edge.dropped_total == 2
