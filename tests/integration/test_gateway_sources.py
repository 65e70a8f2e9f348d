"""The gateway's view of each plant's edges: a clock off beyond the bound is flagged and corrected, a second
instance with the same credentials is flagged, and requests without an instance id change nothing."""

from __future__ import annotations

import json
import math
import time

from integration.gateway.ingest import parse_body, to_messages
from integration.gateway.sources import SourceWatch
from kernel.clock import ScaledClock

SPEED = 60.0


def _watch() -> tuple[SourceWatch, ScaledClock]:
    clock = ScaledClock(time.time() - 1000 / SPEED, SPEED)
    return SourceWatch(clock, skew_bound=120.0, window=600.0), clock


def test_a_clock_off_beyond_the_bound_is_flagged_and_its_events_corrected():
    watch, clock = _watch()
    now = time.time()
    assert watch.observe("P01", "edge-a", f"{clock.to_scenario(now) - 5:.3f}", now)[0] == 0.0  # transit only
    shift, after = watch.observe("P01", "edge-a", f"{clock.to_scenario(now) + 300:.3f}", now)  # 5 minutes ahead
    assert round(shift) == -300 and round(after) == 1000
    report = watch.report()["plants"]["P01"]
    assert report["clock_skew_flagged"] and round(report["t_created_shift_s"]) == -300
    future, past = (b'{"txn_id": "t1", "flow": "goods_receipt", "item": "FG-100", "qty": 1, "unit": "EA", '
                    b'"t_created": %d}' % t for t in (1300, 900))
    corrected = json.loads(to_messages(parse_body(future, "v2"), "P01", shift, after)[0].body)["t_created"]
    assert abs(corrected - 1000.0) < 0.5  # from the future: the edge's clock, corrected
    kept = json.loads(to_messages(parse_body(past, "v2"), "P01", shift, after)[0].body)["t_created"]
    assert kept == 900.0  # an old stamp may be an old event: left as it is (the plant is flagged)
    for _ in range(16):  # the clock is put right: once the skewed samples are out of the window, the flag ends
        watch.observe("P01", "edge-a", f"{clock.to_scenario(now) - 1:.3f}", now)
    episodes = watch.report()["episodes"]
    assert [e["kind"] for e in episodes] == ["clock_skew"] and episodes[0]["end"] is not None
    assert round(episodes[0]["worst"]) == 300


def test_a_second_instance_of_a_plant_is_flagged_and_tools_without_an_instance_are_not_sources():
    watch, clock = _watch()
    now = time.time()
    watch.observe("P01", "edge-a", "", now)
    watch.observe("P01", "", "", now)  # a tool posting with the plant's key: no instance id
    assert watch.report()["plants"]["P01"]["active_sources"] == 1 and not watch.report()["episodes"]
    watch.observe("P01", "edge-b", "", now)
    report = watch.report()
    assert report["plants"]["P01"]["active_sources"] == 2
    assert [(e["kind"], e["plant"], e["worst"]) for e in report["episodes"]] == [("second_source", "P01", 2.0)]


def test_a_slow_link_is_not_taken_for_a_clock_behind_but_a_clock_behind_is_flagged():
    watch, clock = _watch()
    now = time.time()
    for _ in range(16):  # headers 480 s late on a slicing link, the edge's last round trip 500 s
        assert watch.observe("P01", "edge-a", f"{clock.to_scenario(now) - 480:.3f}", now, "500") == (0.0, math.inf)
    assert not watch.report()["plants"]["P01"]["clock_skew_flagged"]
    for _ in range(16):  # the edge's clock 600 s behind on a quick link: flagged, nothing corrected
        assert watch.observe("P02", "edge-b", f"{clock.to_scenario(now) - 600:.3f}", now, "2") == (0.0, math.inf)
    assert watch.report()["plants"]["P02"]["clock_skew_flagged"]
