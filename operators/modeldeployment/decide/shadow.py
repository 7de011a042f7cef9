"""The Shadow strategy, a pure function of (state, inputs) for one candidate.

Shadow: the candidate's pods run the stable model as their primary and the candidate as the
server's shadow model (`--shadow-model-uri`), so they report agreement and latency delta;
Istio mirrors `percent` of the live traffic to them and discards their answers. The stable
keeps serving; changing the strategy type rolls the candidate out for real.
"""

from __future__ import annotations

from dataclasses import replace

from maestro.operators.api.common import Reason
from maestro.operators.api.modeldeployment import DeploymentPhase, ShadowResult, ShadowStrategy
from maestro.operators.core.verdict import Verdict
from maestro.operators.modeldeployment.decide import messages
from maestro.operators.modeldeployment.decide.inputs import Inputs
from maestro.operators.modeldeployment.decide.names import share
from maestro.operators.modeldeployment.decide.outcome import NOTHING, POLL, Outcome, event, outcome
from maestro.operators.modeldeployment.decide.plan import NORMAL, Mirror, Role
from maestro.operators.modeldeployment.decide.revisions import (
    previous_revision,
    revision,
    stable_revision,
)
from maestro.operators.modeldeployment.decide.rollout import deadline_missed, progressing
from maestro.operators.modeldeployment.decide.state import RolloutState
from maestro.operators.modeldeployment.decide.waits import progress_wait, replicas_ready


def shadow(state: RolloutState, inputs: Inputs, name: str, uri: str) -> Outcome:
    """Shadow pods for candidate `name` (`uri`), sized for the mirrored share of the
    stable's traffic; once ready their figures reach status.shadow."""
    settings = inputs.spec.strategy.shadow or ShadowStrategy()
    if state.step is not None:  # coming from a canary: the shadow starts afresh
        state = replace(state, step=None, step_started=None, failed=None)
    state = replace(state, weight=0)
    stable = stable_revision(state, inputs, held=False)
    assert state.stable_uri is not None
    sized = max(stable.replicas, inputs.observed(stable.name).replicas)
    replicas = share(sized, settings.percent)
    pods = revision(inputs.spec, name, state.stable_uri, Role.SHADOW, replicas, shadow_uri=uri)
    mirror = Mirror(name, settings.percent)
    revisions = [stable, pods, *previous_revision(state, inputs)]
    if not replicas_ready(inputs, name, replicas):
        wait = progress_wait(state, inputs)
        if wait.passed:
            return deadline_missed(state, inputs, name, replicas)
        # Mirroring starts again once the pods are ready.
        state = replace(state.waiting_since(wait.started), step_started=None)
        ready = inputs.observed(name).ready_replicas
        verdict = progressing(
            Reason.DEPLOYING, messages.shadow_starting(name, uri, ready, replicas)
        )
        effects = POLL + wait.effects
        return outcome(state, revisions, {stable.name: 100}, verdict, effects, mirror)
    state = state.replicas_ready(name)
    effects = NOTHING
    if state.step_started is None:
        state = replace(state, step_started=inputs.now)
        mirrored = messages.shadow_mirrored(name, settings.percent, stable.name)
        effects = event(NORMAL, Reason.SHADOWING, mirrored)
    elif inputs.shadow is not None:
        found = inputs.shadow
        figures = ShadowResult(
            agreement_rate=found.agreement_rate,
            latency_delta_ms=found.latency_delta_p95_ms,
            requests=None if found.requests is None else round(found.requests),
        )
        state = replace(state, shadow=figures)
    shown = state.shadow or ShadowResult()
    verdict = Verdict(
        ready=True,
        reason=Reason.SHADOWING,
        message=messages.shadowing(
            stable.name,
            name,
            uri,
            settings.percent,
            shown.agreement_rate,
            shown.latency_delta_ms,
        ),
        phase=DeploymentPhase.AVAILABLE,
    )
    return outcome(state, revisions, {stable.name: 100}, verdict, effects, mirror)
