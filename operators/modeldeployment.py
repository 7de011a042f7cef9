"""ModelDeployment handlers: thin; the decisions live in maestro.operators.decisions."""

from __future__ import annotations

from typing import Any

import kopf

from maestro.operators import abtest, driftcheck
from maestro.operators.api.common import GROUP, VERSION
from maestro.operators.api.modeldeployment import ModelDeployment
from maestro.operators.decisions import decide_modeldeployment
from maestro.operators.handlers import (
    MODELDEPLOYMENTS_INDEX,
    Runtime,
    abtest_refs,
    dependents,
    deployments_index,
    driftcheck_refs,
    reconcile_via_patch,
    training_runs_index,
)

PLURAL = ModelDeployment.INFO.plural


def _model_uri(spec: kopf.Spec | dict[str, Any]) -> str | None:
    model = spec.get("model")
    uri = model.get("uri") if isinstance(model, dict) else None
    return uri if isinstance(uri, str) else None


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    @kopf.index(GROUP, VERSION, PLURAL, id=MODELDEPLOYMENTS_INDEX, registry=registry)
    def modeldeployments(
        *, namespace: str | None, name: str, spec: kopf.Spec, **_: Any
    ) -> dict[tuple[str, str], str | None]:
        return {(namespace or "", name): _model_uri(spec)}

    @kopf.on.event(GROUP, VERSION, PLURAL, id="modeldeployment", registry=registry)
    def modeldeployment_event(
        *,
        type: str,
        body: kopf.Body,
        patch: kopf.Patch,
        namespace: str | None,
        name: str,
        spec: kopf.Spec,
        **kwargs: Any,
    ) -> None:
        if type != "DELETED":
            reconcile_via_patch(ModelDeployment, body, patch, decide_modeldeployment, runtime)
        # Kopf updated the index before calling us, so dependents see this event's state:
        # an ABTest waiting with DeploymentNotFound turns Ready now, and back when deleted.
        key = (namespace or "", "ModelDeployment", name)
        if not runtime.referenced_changed(key, type, _model_uri(spec)):
            return
        deployments = deployments_index(kwargs)
        for snap in dependents(abtest_refs(kwargs), key):
            abtest.recheck(snap, deployments, runtime)
        for snap in dependents(driftcheck_refs(kwargs), key):
            driftcheck.recheck(snap, deployments, training_runs_index(kwargs), runtime)
