"""DriftCheck handlers: thin; the decisions live in maestro.operators.decisions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kopf

from maestro.operators.api.common import GROUP, VERSION
from maestro.operators.api.driftcheck import DriftCheck, DriftCheckSpec
from maestro.operators.decisions import Verdict, decide_driftcheck, referenced_training_runs
from maestro.operators.handlers import (
    DRIFTCHECK_REFS_INDEX,
    DeploymentsIndex,
    RefKey,
    Runtime,
    Snapshot,
    TrainingRunsIndex,
    deployment_facts,
    deployments_index,
    existing_names,
    reconcile_via_api,
    reconcile_via_patch,
    snapshot,
    training_runs_index,
)

PLURAL = DriftCheck.INFO.plural


def decider(
    namespace: str,
    deployments: DeploymentsIndex,
    training_runs: TrainingRunsIndex,
) -> Callable[[DriftCheckSpec], Verdict]:
    def decide(spec: DriftCheckSpec) -> Verdict:
        return decide_driftcheck(
            spec,
            deployment_facts(deployments, namespace, [spec.deployment]),
            existing_names(training_runs, namespace, referenced_training_runs(spec)),
        )

    return decide


def recheck(
    snap: Snapshot,
    deployments: DeploymentsIndex,
    training_runs: TrainingRunsIndex,
    runtime: Runtime,
) -> None:
    namespace = snap["metadata"]["namespace"]
    reconcile_via_api(DriftCheck, snap, decider(namespace, deployments, training_runs), runtime)


def _references(spec: kopf.Spec, namespace: str) -> set[RefKey]:
    refs: set[RefKey] = set()
    deployment = spec.get("deployment")
    if isinstance(deployment, str):
        refs.add((namespace, "ModelDeployment", deployment))
    reference = spec.get("reference")
    if isinstance(reference, dict) and isinstance(reference.get("trainingRun"), str):
        refs.add((namespace, "TrainingRun", reference["trainingRun"]))
    on_drift = spec.get("onDrift")
    retrain = on_drift.get("retrain") if isinstance(on_drift, dict) else None
    if isinstance(retrain, dict) and isinstance(retrain.get("template"), str):
        refs.add((namespace, "TrainingRun", retrain["template"]))
    return refs


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    @kopf.index(GROUP, VERSION, PLURAL, id=DRIFTCHECK_REFS_INDEX, registry=registry)
    def driftcheck_refs(
        *, namespace: str | None, body: kopf.Body, spec: kopf.Spec, **_: Any
    ) -> dict[RefKey, Snapshot]:
        snap = snapshot(body)
        return {ref: snap for ref in _references(spec, namespace or "")}

    @kopf.on.event(GROUP, VERSION, PLURAL, id="driftcheck", registry=registry)
    def driftcheck_event(
        *, type: str, body: kopf.Body, patch: kopf.Patch, namespace: str | None, **kwargs: Any
    ) -> None:
        if type == "DELETED":
            return
        decide = decider(namespace or "", deployments_index(kwargs), training_runs_index(kwargs))
        reconcile_via_patch(DriftCheck, body, patch, decide, runtime)
