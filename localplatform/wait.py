"""Polling for the state a test waits on, with a message that says what never came."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None],
    timeout: float = 30,
    what: str = "condition",
    why: Callable[[], str] = lambda: "",
    interval: float = 0.25,
) -> T:
    """Call `probe` until it returns something truthy; return that, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})\n{why()}")
