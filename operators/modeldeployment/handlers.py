"""ModelDeployment handlers: thin Kopf glue around modeldeployment.controller.

A ModelDeployment is reconciled on its own events and on those of the Deployments of its
revisions (their readiness moves rollouts along); time-based steps come back through the
controller's work queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from maestro.operators.api.common import GROUP, VERSION
from maestro.operators.api.modeldeployment import ModelDeployment
from maestro.operators.core.handlers import start_queue
from maestro.operators.core.runtime import Runtime
from maestro.operators.modeldeployment.controller import Controller
from maestro.operators.modeldeployment.render import LABEL_DEPLOYMENT

KIND = ModelDeployment.INFO.kind


def owner_name(body: Mapping[str, Any]) -> str | None:
    """The ModelDeployment that controls a Deployment, if one does."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    for owner in (body.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller") and owner.get("kind") == KIND:
            return str(owner["name"])
    return labels.get(LABEL_DEPLOYMENT)


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    controller = Controller(runtime=runtime)
    start_queue(registry, controller.queue, id="modeldeployment-startup")

    @kopf.on.event(
        GROUP, VERSION, ModelDeployment.INFO.plural, id="modeldeployment", registry=registry
    )
    def modeldeployment_event(*, type: str, namespace: str | None, name: str, **_: Any) -> None:
        if type == "DELETED":
            controller.queue.forget(namespace or "", name)
        else:
            controller.reconcile(namespace or "", name)

    @kopf.on.event(
        "apps",
        "v1",
        "deployments",
        id="modeldeployment-deployments",
        labels={LABEL_DEPLOYMENT: kopf.PRESENT},
        registry=registry,
    )
    def deployment_event(*, type: str, body: kopf.Body, namespace: str | None, **_: Any) -> None:
        owner = owner_name(body)
        if owner is None or type == "DELETED":
            return  # deleted by a reconcile (pruned) or with its ModelDeployment
        controller.reconcile(namespace or "", owner)
