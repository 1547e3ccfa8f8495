"""Waiting on a condition with a generous deadline (never a fixed sleep or a count of polls)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def until(read: Callable[[], Any], ok: Callable[[Any], bool], timeout_s: float = 180.0, every_s: float = 0.05) -> Any:
    """``read()`` once ``ok`` holds of it; AssertionError naming the last value after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if ok(value):
            return value
        assert time.monotonic() < deadline, f"condition not met after {timeout_s} s: {value}"
        time.sleep(every_s)
