"""The one Retry-After parser: seconds, HTTP dates, and what it does with anything else."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from integration.http1 import retry_after_seconds

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("value", "expected"), [
    ("3", 3.0), ("0.25", 0.25), ("0", 0.0), ("-4", 0.0),  # delay-seconds, never negative
    (None, 0.5), ("", 0.5), ("soon", 0.5), ("inf", 0.5), ("nan", 0.5),  # missing or unreadable: the default
    ("Sun, 01 Mar 2026 12:00:30 GMT", 30.0),  # an HTTP date, counted from now
    ("Sun, 01 Mar 2026 11:59:00 GMT", 0.0),  # a date in the past: go now
    ("Sun, 01 Mar 2026 12:01:00", 60.0),  # an obsolete form without a zone is GMT
])
def test_retry_after_seconds_reads_seconds_and_dates(value, expected):
    assert retry_after_seconds(value, 0.5, now=NOW) == pytest.approx(expected)


def test_retry_after_date_counts_from_the_wall_clock_by_default():
    soon = datetime.now(UTC).timestamp() + 120
    wait = retry_after_seconds(format_datetime(datetime.fromtimestamp(soon, UTC), usegmt=True), 0.5)
    assert 100 < wait <= 120
