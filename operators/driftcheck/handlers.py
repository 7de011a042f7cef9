"""DriftCheck handlers: thin Kopf glue around driftcheck.controller.

A DriftCheck is reconciled on its own events, again when the ModelDeployment or a
TrainingRun it names (reference run, retrain template) appears or goes, and whenever one
of its Jobs changes (a finished run is reported at once).
"""

from __future__ import annotations

from typing import Any

import kopf

from maestro.operators.api.common import GROUP, VERSION
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
from maestro.operators.driftcheck.metrics import DriftMetrics
from maestro.operators.driftcheck.render import ANNOTATION_CHECK, LABEL_DRIFTCHECK


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
    controller = build(runtime, DriftMetrics(runtime.metrics))
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

    @kopf.on.event(
        "batch",
        "v1",
        "jobs",
        labels={LABEL_DRIFTCHECK: kopf.PRESENT},
        id="driftcheck-jobs",
        registry=registry,
    )
    def job_event(
        *, namespace: str | None, labels: kopf.Labels, annotations: kopf.Annotations, **_: Any
    ) -> None:
        name = annotations.get(ANNOTATION_CHECK) or labels[LABEL_DRIFTCHECK]
        controller.queue.requeue(namespace or "", str(name), 0)

    @kopf.on.event(GROUP, VERSION, DriftCheck.INFO.plural, id="driftcheck-gone", registry=registry)
    def gone(*, type: str, namespace: str | None, name: str, **_: Any) -> None:
        if type == "DELETED":
            controller.forget(namespace or "", name)
