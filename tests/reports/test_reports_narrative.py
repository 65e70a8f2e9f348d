"""Plain-language formatting and the shared palette."""

from __future__ import annotations

from kernel.trace import FLOWS
from reports import palette
from reports.narrative import count, dur, fault_lines, fault_title, plural


def test_durations_never_round_up_to_a_threshold() -> None:
    assert dur(14.9 * 60) == "14.9 min"
    assert dur(15 * 60) == "15 min"
    assert dur(45.0) == "45.0 s"
    assert dur(0.045) == "45 ms"
    assert dur(3 * 3600 + 5 * 60) == "3h 05m"
    assert dur(None) == "n/a"


def test_counts_and_plurals() -> None:
    assert count(1234) == "1,234"
    assert count(2.5) == "2.5"
    assert plural(1, "posting") == "1 posting"
    assert plural(3, "posting") == "3 postings"


def test_fault_titles_read_naturally() -> None:
    assert fault_title({"kind": "erp_outage", "start": 0.0, "end": 2700.0, "erp": "legacy"}) == \
        "45-minute ERP outage (legacy)"
    assert fault_title({"kind": "wan_outage", "start": 0.0, "end": 7200.0, "erp": "all"}) == "2-hour WAN outage"
    assert fault_title({"kind": "process_kill", "start": 5.0, "end": 5.0, "target": "worker"}) == \
        "process kill (worker)"


def test_every_flow_has_its_own_colour() -> None:
    colours = [palette.flow_color(f) for f in FLOWS]
    assert len(set(colours)) == len(FLOWS)
    assert palette.plant_color("P02", ["P02", "P01"]) == palette.plant_color("P02", ["P01", "P02"])


def test_fault_lines_say_when_the_next_fault_came_first() -> None:
    clean = {"lost": {"count": 0}, "duplicates_posted": {"transactions": 0}}
    sla = {"run": {"start_clock": "2026-01-05 06:00:00"}, "invariants": clean, "faults": [
        {"kind": "erp_outage", "erp": "legacy", "start": 1200.0, "end": 1500.0, "queued": 17.0,
         "queued_undelivered": 0.0, "drained_within": 111.0, "recovered_all": False, "next_fault_first": True,
         "recovery": {"value": 200.0}},
        {"kind": "process_kill", "target": "worker", "start": 2400.0, "end": 2400.0, "queued": 14.0,
         "queued_undelivered": 0.0, "drained_within": 35.0, "recovered_all": True, "next_fault_first": False,
         "recovery": {"value": 35.0}},
    ]}
    first, kill = fault_lines(sla)
    assert first.startswith("During the 5-minute ERP outage (legacy) at Mon 06:20, 17 postings queued")
    assert "the next fault began before the backlog was back to normal" in first
    assert kill.startswith("After the process kill (worker) at Mon 06:40, 14 postings waited")
    assert "back to normal 35.0 s after it" in kill and kill.endswith("none was lost or posted twice.")
