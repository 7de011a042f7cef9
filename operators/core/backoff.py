"""Per-object back-off for a dependency that failed outside a reconcile's error path.

A reconcile that raises is retried by the work queue with its own back-off. Some failures
are not errors of the reconcile: a canary whose figures Prometheus cannot give holds its
step and goes on reconciling the rest. For those, this remembers when to ask the
dependency again, so an outage costs a request per back-off period per object, not one
per reconcile. Pure apart from its memory: the clock is the caller's `now`.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Waiting:
    """The last failure's message, and when the dependency is to be asked again."""

    error: str
    retry_at: datetime
    attempt: int


@dataclass
class Backoff:
    """Doubling delays from `base` up to `cap` seconds per key, reset by a success."""

    base: float = 2.0
    cap: float = 60.0
    _failed: dict[Hashable, Waiting] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def waiting(self, key: Hashable, now: datetime) -> Waiting | None:
        """The failure to report while the next attempt is not due; None: ask now."""
        with self._guard:
            last = self._failed.get(key)
        return last if last is not None and now < last.retry_at else None

    def failed(self, key: Hashable, now: datetime, error: str) -> Waiting:
        with self._guard:
            attempt = (last.attempt + 1) if (last := self._failed.get(key)) else 1
            delay = min(self.cap, self.base * 2 ** (attempt - 1))
            self._failed[key] = Waiting(error, now + timedelta(seconds=delay), attempt)
            return self._failed[key]

    def succeeded(self, key: Hashable) -> None:
        """The dependency answered (or the object is gone): forget the failures."""
        with self._guard:
            self._failed.pop(key, None)
