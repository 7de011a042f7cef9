"""Approved alias moves, read from the governance audit log, for ModelDeployments with
spec.model.requireApproval. One read per (model, alias) per interval, shared by every
ModelDeployment that names it; the database unreachable raises (retried with back-off)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from maestro.governance.audit_log import AuditLog


@dataclass(frozen=True)
class Approved:
    """The newest approval of a version for one model's alias."""

    version: str
    actor: str
    at: datetime


class Approvals:
    def __init__(
        self, database_url: str, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = AuditLog(database_url)
        self._ttl = ttl
        self._clock = clock
        self._guard = threading.Lock()
        self._cache: dict[tuple[str, str], tuple[float, Approved | None]] = {}

    def latest(self, model: str, alias: str) -> Approved | None:
        key = (model, alias)
        with self._guard:
            cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        entry = self._log.latest_approval(model, alias)
        found = None
        if entry is not None:
            found = Approved(str(entry.details.get("version")), entry.actor_label, entry.at)
        with self._guard:
            self._cache[key] = (self._clock() + self._ttl, found)
        return found
