"""What the controllers that own workloads share: a plain-JSON API client that applies
under the operator's one field manager, and a work queue of per-object locks, delayed
re-checks and retry back-off.

Controllers run their reconcile in Kopf's thread pool (handlers are sync), so the queue
is thread-safe and schedules its timers on the operator's event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from maestro.operators.api.common import Condition, StatusBase
from maestro.operators.conditions import Clock
from maestro.operators.decisions import Verdict
from maestro.operators.reconcile import plan_status

FIELD_MANAGER = "maestro-operator"
RETRY_MAX_SECONDS = 60.0
# The hash of the manifest last applied: an object that carries the hash of what the
# operator would apply now is left alone, so a reconcile that finds everything as it
# should be writes nothing (not even a no-op apply).
APPLIED_HASH_ANNOTATION = "mlops.maestro.dev/applied-hash"

Key = tuple[str, str]
Obj = dict[str, Any]
log = logging.getLogger(__name__)


def plural_of(kind: str) -> str:
    """Kubernetes' own rule for the resource name of a kind (all the kinds we touch)."""
    lower = kind.lower()
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    if lower.endswith("s"):
        return lower + "es"
    return lower + "s"


def manifest_hash(obj: Mapping[str, Any]) -> str:
    """A stable digest of a rendered manifest (its annotation excluded)."""
    meta = dict(obj.get("metadata") or {})
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k != APPLIED_HASH_ANNOTATION
    }
    meta["annotations"] = annotations
    canonical = json.dumps({**obj, "metadata": meta}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def with_hash(obj: Mapping[str, Any]) -> Obj:
    """The manifest with its hash annotation set."""
    meta = dict(obj["metadata"])
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        APPLIED_HASH_ANNOTATION: manifest_hash(obj),
    }
    return {**obj, "metadata": meta}


def write_status(
    kube: Kube,
    obj: Mapping[str, Any],
    model: type[StatusBase],
    stored: Mapping[str, Any],
    verdict: Verdict,
    extra: Mapping[str, Any] | None,
    clock: Clock,
) -> tuple[dict[str, Any], Condition | None]:
    """Patch the object's status with what the verdict and `extra` change, nothing if
    nothing does; returns the status as now stored and the Ready transition, if any."""
    plan = plan_status(
        model,
        stored,
        verdict,
        generation=obj["metadata"].get("generation"),
        clock=clock,
        extra=extra,
    )
    if plan.empty:
        return dict(stored), None
    meta = obj["metadata"]
    kube.patch_status(
        obj["apiVersion"], plural_of(obj["kind"]), meta["namespace"], meta["name"], plan.patch
    )
    merged = {**stored, **plan.patch}
    return {k: v for k, v in merged.items() if v is not None}, plan.transition


class Kube:
    """The API calls the controllers make, as plain JSON over the kubernetes client."""

    def __init__(self, api_client: Any, timeout: float) -> None:
        self.api = api_client
        self.timeout = timeout

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        return self.api.call_api(
            path,
            method,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            response_type="object",
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _request_timeout=self.timeout,
        )

    def _get(self, path: str, query: list[tuple[str, str]] | None = None) -> Obj | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return cast(Obj, self._call("GET", path, query=query))
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    @staticmethod
    def path(api_version: str, plural: str, namespace: str, name: str | None = None) -> str:
        base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        path = f"{base}/namespaces/{namespace}/{plural}"
        return f"{path}/{name}" if name else path

    def get(self, api_version: str, plural: str, namespace: str, name: str) -> Obj | None:
        return self._get(self.path(api_version, plural, namespace, name))

    def list(
        self, api_version: str, plural: str, namespace: str, selector: str | None = None
    ) -> list[Obj]:
        query = [("labelSelector", selector)] if selector else None
        found = self._get(self.path(api_version, plural, namespace), query) or {}
        return list(found.get("items") or [])

    def patch_status(
        self, api_version: str, plural: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        self._call(
            "PATCH",
            self.path(api_version, plural, namespace, name) + "/status",
            body={"status": dict(status)},
            content_type="application/merge-patch+json",
        )

    def apply(self, obj: Mapping[str, Any]) -> None:
        """Server-side apply under the operator's one field manager."""
        meta = obj["metadata"]
        self._call(
            "PATCH",
            self.path(obj["apiVersion"], plural_of(obj["kind"]), meta["namespace"], meta["name"]),
            body=dict(obj),
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self._call(
                "DELETE",
                self.path(api_version, plural_of(kind), namespace, name),
                body={"propagationPolicy": "Background"},
            )
        except ApiException as err:
            if err.status != 404:
                raise


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
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _locks: dict[Any, threading.Lock] = field(default_factory=dict)
    _timers: dict[Key, asyncio.TimerHandle] = field(default_factory=dict)
    _failures: dict[Key, int] = field(default_factory=dict)

    @contextmanager
    def lock(self, key: Any) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield

    def requeue(self, namespace: str, name: str, delay: float) -> None:
        """Reconcile the object again after `delay` seconds (an earlier pending one wins)."""
        loop = self.loop
        if loop is None:
            return
        key = (namespace, name)

        def fire() -> None:
            with self._guard:
                self._timers.pop(key, None)
            # Kopf's context (where kopf.event posts to) follows into the worker thread.
            ctx = contextvars.copy_context()
            future = loop.run_in_executor(None, ctx.run, self.reconcile, namespace, name)
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

        loop.call_soon_threadsafe(schedule, context=contextvars.copy_context())

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        with self._guard:
            self._locks.pop(key, None)
            self._failures.pop(key, None)
            timer = self._timers.pop(key, None)
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
        with self.lock((namespace, name)):
            obj = fetch()
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                return
            current = step(obj)
            try:
                current.run()
            except Exception as err:
                current.report_error(err)
                self.failed(namespace, name, err)
            else:
                self.succeeded(namespace, name)

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

    def _log_error(self, future: Any) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("%s re-check failed", self.what, exc_info=future.exception())
