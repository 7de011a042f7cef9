"""TrainingRun handlers: thin; the decisions live in maestro.operators.decisions."""

from __future__ import annotations

from typing import Any

import kopf

from maestro.operators import driftcheck
from maestro.operators.api.common import GROUP, VERSION
from maestro.operators.api.trainingrun import TrainingRun
from maestro.operators.decisions import decide_trainingrun
from maestro.operators.handlers import (
    TRAININGRUNS_INDEX,
    Runtime,
    dependents,
    deployments_index,
    driftcheck_refs,
    reconcile_via_patch,
    training_runs_index,
)

PLURAL = TrainingRun.INFO.plural


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    @kopf.index(GROUP, VERSION, PLURAL, id=TRAININGRUNS_INDEX, registry=registry)
    def trainingruns(*, namespace: str | None, name: str, **_: Any) -> dict[tuple[str, str], bool]:
        return {(namespace or "", name): True}

    @kopf.on.event(GROUP, VERSION, PLURAL, id="trainingrun", registry=registry)
    def trainingrun_event(
        *,
        type: str,
        body: kopf.Body,
        patch: kopf.Patch,
        namespace: str | None,
        name: str,
        **kwargs: Any,
    ) -> None:
        if type != "DELETED":
            reconcile_via_patch(TrainingRun, body, patch, decide_trainingrun, runtime)
        # DriftChecks naming this run as reference or retrain template follow its existence.
        key = (namespace or "", "TrainingRun", name)
        if not runtime.referenced_changed(key, type, True):
            return
        deployments, training_runs = deployments_index(kwargs), training_runs_index(kwargs)
        for snap in dependents(driftcheck_refs(kwargs), key):
            driftcheck.recheck(snap, deployments, training_runs, runtime)
