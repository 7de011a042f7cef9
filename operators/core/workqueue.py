"""A work queue of per-object locks, delayed re-checks and retry back-off, one per
controller: the reconcile framework every kind runs on.

Controllers run their reconcile in Kopf's thread pool (handlers are sync), so the queue
is thread-safe and schedules its timers on the operator's event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry.trace import Tracer

from maestro.operators.core.kube import Obj
from maestro.operators.core.operator_metrics import OperatorMetrics
from maestro.operators.core.tracing import reconcile_span, set_result

RETRY_MAX_SECONDS = 60.0
Key = tuple[str, str]
log = logging.getLogger(__name__)


class Step(Protocol):
    """One reconcile of one object."""

    def run(self) -> None: ...

    def report_error(self, err: Exception) -> None:
        """Say in status why the object does not progress (best effort)."""


@dataclass
class WorkQueue:
    """Per-object locks, delayed re-checks and retry back-off for one controller."""

    what: str  # the kind, for logs
    reconcile: Callable[[str, str], None]
    loop: asyncio.AbstractEventLoop | None = None
    metrics: OperatorMetrics | None = None
    # One span per reconcile (operators.core.tracing); None: tracing is off.
    tracer: Tracer | None = None
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _locks: dict[Any, threading.Lock] = field(default_factory=dict)
    _timers: dict[Key, asyncio.TimerHandle] = field(default_factory=dict)
    _failures: dict[Key, int] = field(default_factory=dict)
    # The context of the first reconcile, as the framework ran it: Kopf keeps what posting
    # an Event needs in context variables of its handlers, so a reconcile woken from a
    # thread of our own (a watch) runs in a copy of this one.
    _handler_context: contextvars.Context | None = None

    def __post_init__(self) -> None:
        if self.metrics is not None:
            # Exported at 0 from the start: a kind that never failed has a failed share of
            # 0 (the dashboard's panel, the alert's ratio), not no data.
            self.metrics.reconcile_errors.labels(self.what)
            self.metrics.workqueue_depth.labels(self.what).set(0)

    @contextmanager
    def lock(self, key: Any) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def wake(self, namespace: str, name: str) -> None:
        """Reconcile the object now, asked from a thread outside any handler or reconcile
        (e.g. a watch of owned objects)."""
        self.requeue(namespace, name, 0, self._handler_context)

    def requeue(
        self,
        namespace: str,
        name: str,
        delay: float,
        context: contextvars.Context | None = None,
    ) -> None:
        """Reconcile the object again after `delay` seconds (an earlier pending one wins),
        in (a copy of) `context`, by default the caller's."""
        loop = self.loop
        if loop is None:
            return
        key = (namespace, name)

        def fire() -> None:
            with self._guard:
                self._timers.pop(key, None)
                self._show_depth()
            # Kopf's context (where kopf.event posts to) follows into the worker thread.
            ctx = contextvars.copy_context()
            try:
                future = loop.run_in_executor(None, ctx.run, self.reconcile, namespace, name)
            except RuntimeError:
                # The operator is stopping (its executor is shut down): the next process
                # reconciles the object from its state, as after any exit.
                log.debug("[%s/%s] %s re-check dropped at shutdown", namespace, name, self.what)
                return
            future.add_done_callback(self._log_error)

        def schedule() -> None:
            due = loop.time() + delay
            with self._guard:
                pending = self._timers.get(key)
                if pending is not None and pending.when() <= due:
                    return
                if pending is not None:
                    pending.cancel()
                self._timers[key] = loop.call_at(due, fire)
                self._show_depth()

        loop.call_soon_threadsafe(
            schedule, context=context.copy() if context else contextvars.copy_context()
        )

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        with self._guard:
            self._locks.pop(key, None)
            self._failures.pop(key, None)
            timer = self._timers.pop(key, None)
            self._show_depth()
        if timer is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(timer.cancel)

    def process(
        self,
        namespace: str,
        name: str,
        fetch: Callable[[], Obj | None],
        step: Callable[[Obj], Step],
    ) -> None:
        """Under the object's lock: read it, run one step on it unless it is gone or being
        deleted, and retry with back-off when the step fails."""
        if self._handler_context is None:
            self._handler_context = contextvars.copy_context()
        with (
            self.lock((namespace, name)),
            reconcile_span(self.tracer, self.what, namespace, name) as span,
        ):
            obj = fetch()
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                set_result(span, "gone")
                return
            generation = obj["metadata"].get("generation")
            current = step(obj)
            started = time.perf_counter()
            try:
                current.run()
            except Exception as err:
                if self.metrics is not None:
                    self.metrics.reconcile_errors.labels(self.what).inc()
                set_result(span, "error", generation, err)
                current.report_error(err)
                self.failed(namespace, name, err)
            else:
                set_result(span, "ok", generation)
                self.succeeded(namespace, name)
            finally:
                if self.metrics is not None:
                    self.metrics.reconcile_seconds.labels(self.what).observe(
                        time.perf_counter() - started
                    )

    def failed(self, namespace: str, name: str, err: Exception) -> None:
        """Retry after a back-off that doubles per consecutive failure."""
        key = (namespace, name)
        attempt = self._failures.get(key, 0) + 1
        self._failures[key] = attempt
        delay = min(RETRY_MAX_SECONDS, 2.0**attempt)
        log.warning(
            "[%s/%s] %s step failed (attempt %d, retry in %.0fs): %s",
            namespace,
            name,
            self.what,
            attempt,
            delay,
            err,
            exc_info=attempt == 1,
        )
        self.requeue(namespace, name, delay)

    def succeeded(self, namespace: str, name: str) -> None:
        self._failures.pop((namespace, name), None)

    def _show_depth(self) -> None:
        """Under the guard."""
        if self.metrics is not None:
            self.metrics.workqueue_depth.labels(self.what).set(len(self._timers))

    def _log_error(self, future: Any) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("%s re-check failed", self.what, exc_info=future.exception())
