"""Registry lookups shared by every object that names the same model, so the cost of
watching the registry follows the number of distinct models, not of ModelDeployments.

One answer per registry reference (a model with its alias, version, stage or `latest`) is
kept for an interval and handed to every caller in it; concurrent callers of one reference
wait for one request. A reference the registry does not have is asked again after a
back-off that doubles up to a ceiling, so a model registered later is still picked up.
MLflow being unreachable is not cached: the caller's own retry handles it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from maestro.serving.uris import parse_models_uri

# (registered model, what of it: "@alias", "version", "stage" or "latest")
RefKey = tuple[str, str]


@dataclass(frozen=True)
class Lookup:
    """The registry's answer: the version the reference means now, or why there is none."""

    version: str | None
    missing: str = ""
    reason: str = ""  # what kind of problem `missing` is (the caller's vocabulary)


@dataclass
class _Entry:
    lookup: Lookup
    expires: float
    misses: int = 0


def reference(uri: str) -> RefKey | None:
    """The registry reference a `models:/` URI names; None outside the registry."""
    try:
        ref = parse_models_uri(uri)
    except ValueError:
        return None
    if ref is None or not ref.name:
        return None
    return ref.name, (f"@{ref.alias}" if ref.alias else ref.version or ref.stage)


@dataclass
class RegistryCache:
    """`lookup(uri)` answers what `resolve(uri)` (a registry call that raises on a missing
    reference, as `Registry.resolve_model_version` does) says, at most once per interval."""

    resolve: Callable[[str], str | None]
    is_missing: Callable[[Exception], bool]
    interval: float
    max_backoff: float = 300.0
    # Which URIs it answers for (None: not cached, nothing asked), and how to name a problem.
    key_of: Callable[[str], RefKey | None] = field(default=lambda uri: reference(uri))
    reason_of: Callable[[Exception], str] = field(default=lambda err: "")
    clock: Callable[[], float] = time.monotonic
    requests: int = 0  # registry calls made, for the operator's own accounting
    _entries: dict[RefKey, _Entry] = field(default_factory=dict)
    _locks: dict[RefKey, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def lookup(self, uri: str) -> Lookup:
        key = self.key_of(uri)
        if key is None:
            return Lookup(version=None)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            entry = self._entries.get(key)
            if entry is not None and self.clock() < entry.expires:
                return entry.lookup
            with self._guard:
                self.requests += 1
            try:
                version = self.resolve(uri)
            except Exception as err:
                if not self.is_missing(err):
                    raise
                misses = entry.misses + 1 if entry is not None and entry.misses else 1
                delay = min(self.max_backoff, self.interval * 2 ** (misses - 1))
                found = Lookup(
                    version=None,
                    missing=" ".join(str(err).split())[:500],
                    reason=self.reason_of(err),
                )
                self._entries[key] = _Entry(found, self.clock() + delay, misses)
                return found
            self._entries[key] = _Entry(Lookup(version=version), self.clock() + self.interval)
            return Lookup(version=version)

    def invalidate(self, model: str) -> None:
        """Forget every answer about `model`: the registry said it changed."""
        with self._guard:
            for key in [k for k in self._entries if k[0] == model]:
                del self._entries[key]

    def next_check(self, uri: str) -> float | None:
        """Seconds until the reference is asked again (None: outside the registry)."""
        key = self.key_of(uri)
        if key is None:
            return None
        with self._guard:
            entry = self._entries.get(key)
        if entry is None:
            return 0.0
        return max(0.0, entry.expires - self.clock())
