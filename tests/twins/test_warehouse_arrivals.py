"""Steady warehouse arrivals drawn per chunk of scenario time: reproducible, window-independent, Poisson."""

from __future__ import annotations

import math

import numpy as np

from kernel.trace import INVENTORY_MOVE, MATERIAL_ISSUE
from scenarios.spec import Scenario
from twins.warehouse_arrivals import CHUNK, MAX_PER_CHUNK, WarehouseArrivals, chunk_length

HOUR = 3600.0


def scenario(**load) -> Scenario:
    return Scenario.model_validate({
        "name": "steady",
        "run": {"seed": 7, "duration": "2d"},
        "landscape": {
            "items": {"FG-100": {"unit": "EA"}, "RM-10": {"unit": "KG"}},
            "plants": [{"id": "P01", "lines": 2, "component_unit": "LB"}, {"id": "P02", "lines": 3}],
        },
        # 60 issues an hour at P01 (2 lines), 60 moves; shift changes at 8 h and 16 h: 1 h at three times the rate.
        "load": {"material_issues": "30/h", "inventory_moves": "60/h",
                 "shift": {"length": "8h", "change_burst_duration": "1h", "change_burst_factor": 3}} | load,
    })


def arrays(flows) -> list[tuple[np.ndarray, ...]]:
    return [(f.times, f.lines, f.qty) for f in flows]


def same(a, b) -> bool:
    return all(np.array_equal(x, y) for fa, fb in zip(arrays(a), arrays(b), strict=True)
               for x, y in zip(fa, fb, strict=True))


def test_the_same_inputs_draw_the_same_arrivals_and_other_replications_or_plants_their_own():
    spec = scenario()
    first = WarehouseArrivals(spec, 0).between(0, 24 * HOUR)
    assert same(first, WarehouseArrivals(spec, 0, replication=0).between(0, 24 * HOUR))
    assert not same(first, WarehouseArrivals(spec, 0, replication=1).between(0, 24 * HOUR))
    assert not np.array_equal(first[1].times, WarehouseArrivals(spec, 1).between(0, 24 * HOUR)[1].times)


def test_windows_split_anywhere_give_the_arrivals_of_one_window():
    spec = scenario()
    whole = WarehouseArrivals(spec, 0).between(0, 24 * HOUR)
    cuts = [0.0, 1.5, 3599.9, 3600.0, 7300.25, 8 * HOUR + 17, 9 * HOUR, 20 * HOUR, 24 * HOUR]
    split = WarehouseArrivals(spec, 0)
    parts = [split.between(a, b) for a, b in zip(cuts, cuts[1:], strict=False)]
    for k in range(2):
        for attr in ("times", "lines", "qty"):
            joined = np.concatenate([getattr(p[k], attr) for p in parts])
            assert np.array_equal(joined, getattr(whole[k], attr))
    # A late window draws only the chunks it touches (memory of the order of a window, not of the run).
    late = WarehouseArrivals(spec, 0)
    window = late.between(40 * HOUR + 5, 41 * HOUR)
    full = WarehouseArrivals(spec, 0).between(0, 48 * HOUR)
    assert same(window, [f.take((f.times >= 40 * HOUR + 5) & (f.times < 41 * HOUR)) for f in full])
    assert set(late._cache) == {40}


def test_counts_follow_the_rates_with_the_shift_change_extras():
    issues, moves = WarehouseArrivals(scenario(), 0).between(0, 24 * HOUR)
    expected = 60 * 24 + 60 * 2 * 2  # base over a day + (factor - 1) x rate over the two changes' hours
    for flow in (issues, moves):
        assert abs(len(flow) - expected) < 5 * math.sqrt(expected)
        assert np.all(np.diff(flow.times) >= 0) and flow.times[0] >= 0 and flow.times[-1] < 24 * HOUR
    in_change = ((moves.times >= 8 * HOUR) & (moves.times < 9 * HOUR)).sum()
    assert abs(in_change - 180) < 5 * math.sqrt(180)
    # Issues consume the component in the plant's unit, moves carry the line's product.
    assert (issues.flow, issues.item, issues.unit) == (MATERIAL_ISSUE, "RM-10", "LB")
    assert (moves.flow, moves.item, moves.unit) == (INVENTORY_MOVE, None, "EA")
    assert set(issues.lines.tolist()) == {0, 1} and set(moves.lines.tolist()) == {0, 1}
    assert issues.qty.min() >= 5 and issues.qty.max() <= 50 and np.allclose(issues.qty * 10, np.rint(issues.qty * 10))
    assert moves.qty.min() >= 1 and moves.qty.max() <= 99 and np.all(moves.qty == np.floor(moves.qty))


def test_rates_of_zero_draw_nothing_and_high_rates_draw_in_shorter_chunks():
    off = WarehouseArrivals(scenario(material_issues=0, inventory_moves=0), 0)
    assert not off.active and [len(f) for f in off.between(0, 48 * HOUR)] == [0, 0]
    assert chunk_length(1.0) == CHUNK
    fast = chunk_length(1000.0)
    assert fast * 1000.0 <= MAX_PER_CHUNK < 2 * fast * 1000.0
    busy = WarehouseArrivals(scenario(inventory_moves="500/s"), 0)
    assert busy.chunk < CHUNK and busy.chunk * 1500 <= MAX_PER_CHUNK  # the peak: 3 x 500/s at a shift change
