"""DriftCheck decisions, pure: which references resolve, and what runs for a valid check.

The controller gathers which of the named ModelDeployment and TrainingRuns exist and
passes them in.
"""

from __future__ import annotations

from collections.abc import Mapping, Set

from maestro.operators.api.driftcheck import DriftCheckSpec
from maestro.operators.core.verdict import (
    DeploymentFacts,
    Verdict,
    deployment_missing,
    first_failure,
    not_implemented,
    training_run_missing,
)

# What a valid DriftCheck does not get yet, said in its Ready message.
NOT_RUNNING = (
    "no DriftCheck controller runs yet: no CronJob is created, no drift is computed and"
    " no alert or retraining follows."
)


def decide(
    spec: DriftCheckSpec,
    deployments: Mapping[str, DeploymentFacts],
    training_runs: Set[str],
) -> Verdict:
    """`deployments` / `training_runs`: the existing objects among those the spec names."""
    retrain = spec.on_drift.retrain if spec.on_drift else None
    return first_failure(
        [
            deployment_missing(spec.deployment, deployments, "spec.deployment"),
            training_run_missing(
                spec.reference.training_run, training_runs, "spec.reference.trainingRun"
            ),
            training_run_missing(
                retrain.template if retrain else None,
                training_runs,
                "spec.onDrift.retrain.template",
            ),
        ],
        not_implemented("DriftCheck", NOT_RUNNING),
    )


def referenced_deployments(spec: DriftCheckSpec) -> set[str]:
    return {spec.deployment}


def referenced_training_runs(spec: DriftCheckSpec) -> set[str]:
    names = {spec.reference.training_run} if spec.reference.training_run else set()
    if spec.on_drift and spec.on_drift.retrain:
        names.add(spec.on_drift.retrain.template)
    return names
