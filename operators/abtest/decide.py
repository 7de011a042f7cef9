"""ABTest decisions, pure: which references resolve, and what runs for a valid test.

The controller gathers the ModelDeployment the test names (its model URI, if it exists)
and passes it in as `DeploymentFacts`.
"""

from __future__ import annotations

from collections.abc import Mapping

from maestro.operators.api.abtest import ABTestSpec
from maestro.operators.api.common import Reason
from maestro.operators.core.verdict import (
    PENDING,
    DeploymentFacts,
    Verdict,
    deployment_missing,
    first_failure,
    not_implemented,
)

# What a valid ABTest does not get yet, said in its Ready message.
NOT_RUNNING = (
    "no ABTest controller runs yet: no traffic is split to the challenger, no outcome is"
    " counted and no decision is made."
)


def decide(spec: ABTestSpec, deployments: Mapping[str, DeploymentFacts]) -> Verdict:
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
        [deployment_missing(spec.deployment, deployments, "spec.deployment"), challenger_differs],
        not_implemented("ABTest", NOT_RUNNING),
    )


def referenced_deployments(spec: ABTestSpec) -> set[str]:
    return {spec.deployment}
