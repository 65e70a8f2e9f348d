"""Human units in scenario files: durations like ``45m`` or ``1h30m``, rates like ``50/s``.

Both parse to float seconds / float events-per-second, so the rest of the code never sees text.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d|w)")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(ms|s|sec|min|m|h|d)\s*$")
_RATE_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> float:
    """Seconds from a number (already seconds) or text such as ``90s``, ``45m``, ``1h30m``, ``7d``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 45m, 2h or 7d")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 30s, 45m, 2h or 7d")
    text = value.strip().lower().replace(" ", "")
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{value!r} is not a duration; write e.g. 250ms, 30s, 45m, 1h30m or 7d")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def parse_rate(value: object) -> float:
    """Events per second from a number (already per second) or text such as ``50/s``, ``12/h``."""
    if isinstance(value, bool):
        raise ValueError("expected a rate such as 50/s, 12/min or 3/h")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a rate cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a rate such as 50/s, 12/min or 3/h")
    match = _RATE.match(value.lower())
    if not match:
        raise ValueError(f"{value!r} is not a rate; write e.g. 50/s, 12/min or 3/h")
    return float(match.group(1)) / _RATE_UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """Short human text for a duration in seconds (``1h 05m``, ``42.0 s``, ``350 ms``)."""
    if seconds != seconds:  # NaN
        return "n/a"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, _ = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m" if hours else f"{minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


Duration = Annotated[float, BeforeValidator(parse_duration)]
Rate = Annotated[float, BeforeValidator(parse_rate)]
