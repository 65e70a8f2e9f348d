"""The edge's subscription handler turns one PublishResponse's data changes into inbox rows."""

from __future__ import annotations

from datetime import UTC, datetime

from asyncua import ua

from kernel.clock import ScaledClock
from live.edge import _Handler


def test_batch_rows_carry_machine_kind_value_and_the_scenario_time_of_the_source_stamp():
    clock = ScaledClock(epoch=1_000.0, speed=60.0)
    inbox: list = []
    handler = _Handler(clock, inbox)
    stamped = datetime.fromtimestamp(1_010.0, UTC)  # 10 wall seconds after the epoch = 600 scenario s
    handler.datachange_batch(
        [
            ((3, "good"), ua.DataValue(ua.Variant(42, ua.VariantType.UInt64), SourceTimestamp=stamped)),
            ((3, "state"), ua.DataValue(ua.Variant("down", ua.VariantType.String), SourceTimestamp=stamped)),
            ((7, "temperature"), ua.DataValue(ua.Variant(71.5, ua.VariantType.Double))),  # no source stamp
        ]
    )
    assert inbox[:2] == [("signal", 3, "good", 42, 600.0), ("signal", 3, "state", "down", 600.0)]
    kind, machine, signal, value, t = inbox[2]
    assert (kind, machine, signal, value) == ("signal", 7, "temperature", 71.5)
    assert abs(t - clock.now()) < 60.0  # falls back to the edge's own clock (within a wall second)


def test_downtime_events_still_arrive_one_by_one():
    inbox: list = []

    class Event:
        Machine, Line, DownStart, DownEnd = "M02", "Line01", 120.0, 480.0

    _Handler(ScaledClock(0.0), inbox).event_notification(Event())
    assert inbox == [("downtime", "Line01", "M02", 120.0, 480.0)]
