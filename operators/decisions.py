"""What the schema cannot check, decided without I/O.

Handlers gather facts (which referenced objects exist) and pass them in; each `decide_*`
runs an ordered chain of checks and returns the first failure or an acceptance, with a
reason from the shared vocabulary and a message that says what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass

from pydantic import ValidationError

from maestro.operators.api.abtest import ABTestSpec
from maestro.operators.api.common import Reason
from maestro.operators.api.driftcheck import DriftCheckSpec

PENDING = "Pending"
FAILED = "Failed"


@dataclass(frozen=True)
class Verdict:
    """Outcome of the checks: the Ready condition and the phase to report.

    `ready` None reports Ready=Unknown: work in progress (a queued or running TrainingRun)
    that is neither done nor wrong.
    """

    ready: bool | None
    reason: Reason
    message: str
    phase: str


@dataclass(frozen=True)
class DeploymentFacts:
    """What an ABTest or DriftCheck needs to know about an existing ModelDeployment."""

    model_uri: str | None


Check = Callable[[], Verdict | None]


def first_failure(checks: Iterable[Check], accepted: Verdict) -> Verdict:
    for check in checks:
        verdict = check()
        if verdict is not None:
            return verdict
    return accepted


def accepted(kind: str) -> Verdict:
    # Ready=True means "accepted and every reference resolves" until the controllers that
    # create workloads land; phase stays Pending so nobody mistakes it for running.
    return Verdict(
        ready=True,
        reason=Reason.ACCEPTED,
        message=f"{kind} spec accepted; all references resolve.",
        phase=PENDING,
    )


def invalid_spec(kind: str, error: ValidationError) -> Verdict:
    """The API server accepted a spec the operator cannot parse (e.g. CRDs older than it).

    Failed rather than Pending: nothing will change until someone edits the object or
    upgrades the CRDs, and retrying would only repeat the error.
    """
    problems = "; ".join(
        f"spec.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()[:5]
    )
    return Verdict(
        ready=False,
        reason=Reason.INVALID_SPEC,
        message=f"{kind} spec cannot be used: {problems}. Fix the spec or update the CRDs.",
        phase=FAILED,
    )


def _deployment_missing(name: str, deployments: Mapping[str, DeploymentFacts], role: str) -> Check:
    def check() -> Verdict | None:
        if name in deployments:
            return None
        # Pending, not Failed: GitOps tools apply objects in any order and the deployment
        # may simply not exist yet; the operator re-checks when ModelDeployments change.
        return Verdict(
            ready=False,
            reason=Reason.DEPLOYMENT_NOT_FOUND,
            message=(
                f"ModelDeployment {name!r} ({role}) does not exist in this namespace;"
                " create it or fix spec.deployment."
            ),
            phase=PENDING,
        )

    return check


def _training_run_missing(name: str | None, existing: Set[str], field: str) -> Check:
    def check() -> Verdict | None:
        if name is None or name in existing:
            return None
        return Verdict(
            ready=False,
            reason=Reason.TRAINING_RUN_NOT_FOUND,
            message=(
                f"TrainingRun {name!r} named in {field} does not exist in this namespace;"
                f" create it or fix {field}."
            ),
            phase=PENDING,
        )

    return check


def decide_abtest(spec: ABTestSpec, deployments: Mapping[str, DeploymentFacts]) -> Verdict:
    """`deployments`: the existing ModelDeployments among those the spec names."""

    def challenger_differs() -> Verdict | None:
        champion = deployments[spec.deployment].model_uri
        if champion != spec.challenger.model.uri:
            return None
        return Verdict(
            ready=False,
            reason=Reason.CHALLENGER_SAME_AS_CHAMPION,
            message=(
                f"spec.challenger.model.uri is the model ModelDeployment {spec.deployment!r}"
                f" already serves ({champion}); point it at a different model version."
            ),
            phase=PENDING,
        )

    return first_failure(
        [_deployment_missing(spec.deployment, deployments, "spec.deployment"), challenger_differs],
        accepted("ABTest"),
    )


def decide_driftcheck(
    spec: DriftCheckSpec,
    deployments: Mapping[str, DeploymentFacts],
    training_runs: Set[str],
) -> Verdict:
    """`deployments` / `training_runs`: the existing objects among those the spec names."""
    retrain = spec.on_drift.retrain if spec.on_drift else None
    return first_failure(
        [
            _deployment_missing(spec.deployment, deployments, "spec.deployment"),
            _training_run_missing(
                spec.reference.training_run, training_runs, "spec.reference.trainingRun"
            ),
            _training_run_missing(
                retrain.template if retrain else None,
                training_runs,
                "spec.onDrift.retrain.template",
            ),
        ],
        accepted("DriftCheck"),
    )


def referenced_training_runs(spec: DriftCheckSpec) -> set[str]:
    names = {spec.reference.training_run} if spec.reference.training_run else set()
    if spec.on_drift and spec.on_drift.retrain:
        names.add(spec.on_drift.retrain.template)
    return names
