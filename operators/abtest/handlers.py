"""ABTest handlers: thin Kopf glue around abtest.controller.

An ABTest is reconciled on its own events and again when the ModelDeployment it names
appears, goes or changes its model (an ABTest waiting with DeploymentNotFound moves on).
"""

from __future__ import annotations

from collections.abc import Mapping

import kopf

from maestro.operators.abtest.controller import build
from maestro.operators.api.abtest import ABTest
from maestro.operators.api.modeldeployment import ModelDeployment
from maestro.operators.core.handlers import (
    recheck_on_change,
    reconcile_with_references,
    start_queue,
)
from maestro.operators.core.references import References, RefKey
from maestro.operators.core.runtime import Runtime

KIND = ABTest.INFO.kind


def references(namespace: str, spec: kopf.Spec) -> set[RefKey]:
    deployment = spec.get("deployment")
    if not isinstance(deployment, str):
        return set()
    return {(namespace, ModelDeployment.INFO.kind, deployment)}


def model_uri(spec: kopf.Spec) -> object:
    model = spec.get("model")
    return model.get("uri") if isinstance(model, Mapping) else None


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    controller = build(runtime)
    refs = References()
    start_queue(registry, controller.queue, id="abtest-startup")

    reconcile_with_references(
        registry,
        plural=ABTest.INFO.plural,
        id="abtest",
        reconcile=controller.reconcile,
        queue=controller.queue,
        references=refs,
        refs_of=references,
        deleted=controller.metrics.forget,
    )
    recheck_on_change(
        registry,
        plural=ModelDeployment.INFO.plural,
        kind=ModelDeployment.INFO.kind,
        id="abtest-modeldeployments",
        references=refs,
        queue=controller.queue,
        value=model_uri,
    )
