"""Kopf glue every kind's handlers share: the work queue's event loop, and re-checks of a
kind's objects when objects they reference change.

Every kind is reconciled level-triggered from `@kopf.on.event`, through its controller's
work queue: no Kopf timers or daemons (they add finalizers, and a finalizer blocks
namespace deletion whenever the operator is down) and no progress annotations on users'
objects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import kopf

from maestro.operators.api.common import GROUP, VERSION
from maestro.operators.core.references import References, RefKey
from maestro.operators.core.workqueue import WorkQueue


def start_queue(registry: kopf.OperatorRegistry, queue: WorkQueue, id: str) -> None:
    """Give the queue the operator's event loop, on which its timers run."""

    @kopf.on.startup(id=id, registry=registry)
    async def started(**_: Any) -> None:
        queue.loop = asyncio.get_running_loop()


def recheck_on_change(
    registry: kopf.OperatorRegistry,
    *,
    plural: str,
    kind: str,
    id: str,
    references: References,
    queue: WorkQueue,
    value: Callable[[kopf.Spec], object] = lambda _: True,
) -> None:
    """Requeue the dependents recorded in `references` when an object of `kind` (of this
    API group) appears, goes, or changes what `value` reads of its spec."""

    @kopf.on.event(GROUP, VERSION, plural, id=id, registry=registry)
    def referenced_event(
        *, type: str, namespace: str | None, name: str, spec: kopf.Spec, **_: Any
    ) -> None:
        ref = (namespace or "", kind, name)
        if not references.changed(ref, type, value(spec)):
            return
        for dependent in references.dependents(ref):
            queue.requeue(namespace or "", dependent, 0)


def reconcile_with_references(
    registry: kopf.OperatorRegistry,
    *,
    plural: str,
    id: str,
    reconcile: Callable[[str, str], None],
    queue: WorkQueue,
    references: References,
    refs_of: Callable[[str, kopf.Spec], set[RefKey]],
    deleted: Callable[[str, str], None] | None = None,
) -> None:
    """Reconcile a kind on its own events, recording the references its spec makes so that
    `recheck_on_change` can requeue it when one of them changes; `deleted` is told when an
    object is gone (to drop its gauges)."""

    @kopf.on.event(GROUP, VERSION, plural, id=id, registry=registry)
    def own_event(
        *, type: str, namespace: str | None, name: str, spec: kopf.Spec, **_: Any
    ) -> None:
        ns = namespace or ""
        if type == "DELETED":
            references.forget(ns, name)
            queue.forget(ns, name)
            if deleted is not None:
                deleted(ns, name)
            return
        references.record(ns, name, refs_of(ns, spec))
        reconcile(ns, name)
