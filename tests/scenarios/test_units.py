"""Human units in scenario files: durations and rates parse to seconds, bad text names the fix."""

from __future__ import annotations

import math

import pytest
from pydantic import BaseModel, ValidationError

from scenarios.units import Duration, Rate, format_duration, parse_duration, parse_rate


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("45m", 2700.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("90s", 90.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        ("5min", 300.0),
        ("1.5h", 5400.0),
        ("1h 30m", 5400.0),
        (" 2H ", 7200.0),
        ("1d2h3m4s", 86400 + 7200 + 180 + 4),
        (30, 30.0),
        (0, 0.0),
        (2.5, 2.5),
    ],
)
def test_durations_parse_to_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "abc", "45", "5 parsecs", "-5m", "1h-30m", "m", "45mm", "h1"])
def test_bad_duration_text_names_the_value_and_examples(bad):
    with pytest.raises(ValueError) as info:
        parse_duration(bad)
    message = str(info.value)
    assert repr(bad) in message
    assert "45m" in message and "1h30m" in message


@pytest.mark.parametrize("bad", [True, None, [1], {"m": 1}])
def test_non_text_non_number_durations_are_refused(bad):
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(bad)


def test_negative_duration_number_is_refused():
    with pytest.raises(ValueError, match="negative"):
        parse_duration(-1)


@pytest.mark.parametrize(
    ("text", "per_second"),
    [
        ("50/s", 50.0),
        ("12/h", 12 / 3600),
        ("12/min", 0.2),
        ("6/m", 0.1),
        ("2/ms", 2000.0),
        ("24/d", 24 / 86400),
        ("3 / sec", 3.0),
        ("0.5/s", 0.5),
        (7, 7.0),
        (0.25, 0.25),
    ],
)
def test_rates_parse_to_events_per_second(text, per_second):
    assert parse_rate(text) == pytest.approx(per_second)


@pytest.mark.parametrize("bad", ["50", "50/fortnight", "/s", "fast", "50/s/s", "-3/s"])
def test_bad_rate_text_names_the_value_and_examples(bad):
    with pytest.raises(ValueError) as info:
        parse_rate(bad)
    assert repr(bad) in str(info.value)
    assert "50/s" in str(info.value)


@pytest.mark.parametrize("bad", [False, None, -2])
def test_rate_of_wrong_type_or_sign_is_refused(bad):
    with pytest.raises(ValueError):
        parse_rate(bad)


class _Knobs(BaseModel):
    wait: Duration
    speed: Rate


def test_annotated_types_convert_inside_pydantic_models():
    knobs = _Knobs(wait="1h30m", speed="12/h")
    assert knobs.wait == 5400.0
    assert knobs.speed == pytest.approx(1 / 300)


def test_annotated_types_report_the_field_with_the_fix():
    with pytest.raises(ValidationError) as info:
        _Knobs(wait="soon", speed="1/s")
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [("wait",)]
    assert "45m" in errors[0]["msg"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.35, "350 ms"),
        (42.0, "42.0 s"),
        (119.9, "119.9 s"),
        (120.0, "2 min"),
        (3900.0, "1h 05m"),
        (47 * 3600.0, "47h 00m"),
        (50 * 3600.0 + 60, "2d 02h"),
        (math.nan, "n/a"),
    ],
)
def test_format_duration_is_short_and_readable(seconds, text):
    assert format_duration(seconds) == text
