"""DriftCheck handlers: thin Kopf glue around driftcheck.controller.

A DriftCheck is reconciled on its own events and again when the ModelDeployment or a
TrainingRun it names (reference run, retrain template) appears or goes.
"""

from __future__ import annotations

import kopf

from maestro.operators.api.driftcheck import DriftCheck
from maestro.operators.api.modeldeployment import ModelDeployment
from maestro.operators.api.trainingrun import TrainingRun
from maestro.operators.core.handlers import (
    recheck_on_change,
    reconcile_with_references,
    start_queue,
)
from maestro.operators.core.references import References, RefKey
from maestro.operators.core.runtime import Runtime
from maestro.operators.driftcheck.controller import build


def references(namespace: str, spec: kopf.Spec) -> set[RefKey]:
    refs: set[RefKey] = set()
    deployment = spec.get("deployment")
    if isinstance(deployment, str):
        refs.add((namespace, ModelDeployment.INFO.kind, deployment))
    reference = spec.get("reference")
    if isinstance(reference, dict) and isinstance(reference.get("trainingRun"), str):
        refs.add((namespace, TrainingRun.INFO.kind, reference["trainingRun"]))
    on_drift = spec.get("onDrift")
    retrain = on_drift.get("retrain") if isinstance(on_drift, dict) else None
    if isinstance(retrain, dict) and isinstance(retrain.get("template"), str):
        refs.add((namespace, TrainingRun.INFO.kind, retrain["template"]))
    return refs


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    controller = build(runtime)
    refs = References()
    start_queue(registry, controller.queue, id="driftcheck-startup")

    reconcile_with_references(
        registry,
        plural=DriftCheck.INFO.plural,
        id="driftcheck",
        reconcile=controller.reconcile,
        queue=controller.queue,
        references=refs,
        refs_of=references,
    )
    for kind in (ModelDeployment, TrainingRun):
        recheck_on_change(
            registry,
            plural=kind.INFO.plural,
            kind=kind.INFO.kind,
            id=f"driftcheck-{kind.INFO.plural}",
            references=refs,
            queue=controller.queue,
        )
