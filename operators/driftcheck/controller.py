"""DriftCheck controller: gather the ModelDeployment and TrainingRuns the check names,
decide (driftcheck.decide), report. Nothing is applied yet: no CronJob exists until its
controller lands."""

from __future__ import annotations

from maestro.operators.api.driftcheck import DriftCheck, DriftCheckSpec, DriftCheckStatus
from maestro.operators.core.checker import CheckingController
from maestro.operators.core.gather import deployment_facts, existing_training_runs
from maestro.operators.core.kube import Kube
from maestro.operators.core.runtime import Runtime
from maestro.operators.core.verdict import Verdict
from maestro.operators.driftcheck.decide import (
    decide,
    referenced_deployments,
    referenced_training_runs,
)


def gather_and_decide(spec: DriftCheckSpec, kube: Kube, namespace: str) -> Verdict:
    return decide(
        spec,
        deployment_facts(kube, namespace, referenced_deployments(spec)),
        existing_training_runs(kube, namespace, referenced_training_runs(spec)),
    )


def build(runtime: Runtime) -> CheckingController[DriftCheckSpec]:
    return CheckingController(
        runtime=runtime,
        resource=DriftCheck,
        spec_model=DriftCheckSpec,
        status_model=DriftCheckStatus,
        decide=gather_and_decide,
    )
