"""Waiting in tests: poll a condition with a deadline, never a fixed sleep."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


def poll(check: Callable[[], Any], deadline_s: float = 10.0, every_s: float = 0.05, message: str = "") -> Any:
    """Call ``check`` until it returns something truthy and return that; fail after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    pause = threading.Event()  # never set: ``wait`` is an interval between tries
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(message or f"condition not met within {deadline_s} s: {check}")
        pause.wait(every_s)


async def until(check: Callable[[], Any], deadline_s: float = 15.0, what: str = "condition") -> Any:
    """:func:`poll` inside an event loop: await ``check`` being truthy, yielding to the loop meanwhile;
    fail naming ``what`` after ``deadline_s`` wall seconds."""
    import asyncio

    end = time.monotonic() + deadline_s
    while not (result := check()):
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline_s} s waiting for {what}")
        await asyncio.sleep(0.02)
    return result
