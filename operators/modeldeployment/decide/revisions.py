"""The revisions a plan names and the replica floors they get.

Rollouts respect autoscaling: while a candidate is rolled out the stable revision's floor
(HPA minReplicas) is its current replica count, so it can take all traffic back at once and
is never scaled down; a canary's replicas follow its weight, ceil(stable * weight / 100).
"""

from __future__ import annotations

from maestro.operators.api.modeldeployment import ModelDeploymentSpec
from maestro.operators.modeldeployment.decide.inputs import Inputs
from maestro.operators.modeldeployment.decide.plan import Revision, Role
from maestro.operators.modeldeployment.decide.state import RolloutState


def held_floor(inputs: Inputs, name: str | None) -> int:
    """A revision that must be able to take all traffic at once: never below what it runs
    now (the HPA may have scaled it up), nor below replicas.min."""
    spec = inputs.spec
    if not spec.autoscaling.enabled:
        return spec.replicas.min
    return max(spec.replicas.min, inputs.observed(name).replicas)


def revision(
    spec: ModelDeploymentSpec,
    name: str,
    uri: str,
    role: Role,
    replicas: int,
    shadow_uri: str | None = None,
) -> Revision:
    return Revision(
        name=name,
        model_uri=uri,
        role=role,
        replicas=replicas,
        max_replicas=max(replicas, spec.replicas.max),
        shadow_model_uri=shadow_uri,
    )


def stable_revision(state: RolloutState, inputs: Inputs, held: bool) -> Revision:
    """The stable revision: `held` at its current size during a rollout, else from
    replicas.min, where the HPA sizes it."""
    assert state.stable is not None and state.stable_uri is not None
    replicas = held_floor(inputs, state.stable) if held else inputs.spec.replicas.min
    return revision(inputs.spec, state.stable, state.stable_uri, Role.STABLE, replicas)


def previous_revision(state: RolloutState, inputs: Inputs) -> list[Revision]:
    """The blue/green revision kept for a switch back, if any, held at its size."""
    if state.previous is None or state.previous_uri is None:
        return []
    floor = held_floor(inputs, state.previous)
    return [revision(inputs.spec, state.previous, state.previous_uri, Role.PREVIOUS, floor)]
