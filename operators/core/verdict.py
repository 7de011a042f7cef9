"""The outcome every kind's pure `decide` returns, and the pieces they share: an ordered
chain of checks (the first failure wins), the verdict for a spec the operator cannot
parse, and the reference checks kinds that name other objects run. Pure: no I/O.

Controllers gather facts (which referenced objects exist) and pass them in; each kind's
`decide` runs an ordered chain of checks and returns the first failure or its own
verdict, with a reason from the shared vocabulary and a message that says what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass

from pydantic import ValidationError

from maestro.operators.api.common import Reason

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


def deployment_missing(name: str, deployments: Mapping[str, DeploymentFacts], role: str) -> Check:
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


def training_run_missing(name: str | None, existing: Set[str], field: str) -> Check:
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
