"""What every rollout strategy shares: the steady state, starting, promoting, aborting and
rolling back a candidate, the first revision, and a model that cannot be resolved.

Every function is pure: it takes the state and the inputs and returns the new state (in an
`Outcome`, or with the `Effects` of its step) without changing anything it was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from maestro.operators.api.common import Reason
from maestro.operators.api.modeldeployment import (
    AnalysisResult,
    BlueGreenStrategy,
    DeploymentPhase,
    LoadFailure,
    MissedDeadline,
)
from maestro.operators.core.verdict import Verdict
from maestro.operators.modeldeployment.decide import messages
from maestro.operators.modeldeployment.decide.inputs import Inputs, canary_settings
from maestro.operators.modeldeployment.decide.names import parse_duration
from maestro.operators.modeldeployment.decide.outcome import (
    NOTHING,
    POLL,
    Effects,
    Outcome,
    event,
    outcome,
    wake_at,
)
from maestro.operators.modeldeployment.decide.plan import NORMAL, WARNING, Revision
from maestro.operators.modeldeployment.decide.revisions import previous_revision, stable_revision
from maestro.operators.modeldeployment.decide.state import RolloutState
from maestro.operators.modeldeployment.decide.waits import missed_deadline, progress_wait

# Phases in which the stable revision has served: short of replicas it is Degraded, not
# still starting.
_SERVED = (DeploymentPhase.AVAILABLE, DeploymentPhase.DEGRADED, DeploymentPhase.ROLLED_BACK)


def progressing(reason: Reason, message: str) -> Verdict:
    return Verdict(ready=None, reason=reason, message=message, phase=DeploymentPhase.PROGRESSING)


@dataclass(frozen=True)
class Assessed:
    """A verdict on the stable revision, with the state and effects it implies."""

    verdict: Verdict
    state: RolloutState
    effects: Effects


def stable_verdict(state: RolloutState, inputs: Inputs, stable: Revision) -> Assessed:
    """How the stable revision serves: Available with its replicas; short of them Degraded
    if it has served, else starting (the first revision) until progressDeadline, then
    Failed."""
    ready = inputs.observed(stable.name).ready_replicas
    what = messages.revision_text(stable.name, stable.model_uri)
    if ready >= stable.replicas:
        kept = messages.kept_for_rollback(state.previous, state.scale_down_at)
        verdict = Verdict(
            ready=True,
            reason=Reason.AVAILABLE,
            message=messages.available(what, ready, kept),
            phase=DeploymentPhase.AVAILABLE,
        )
        return Assessed(verdict, state.stable_ready(), NOTHING)
    if inputs.status.phase in _SERVED:
        verdict = Verdict(
            ready=False,
            reason=Reason.REPLICAS_UNAVAILABLE,
            message=messages.degraded(what, ready, stable.replicas),
            phase=DeploymentPhase.DEGRADED,
        )
        return Assessed(verdict, state, POLL)
    # Not serving before (no phase, Progressing, Failed): the first revision's wait, cut
    # short when its pods say they cannot load the model.
    failure = inputs.load_failures.get(stable.name)
    if failure:
        verdict = Verdict(
            ready=False,
            reason=Reason.MODEL_LOAD_FAILED,
            message=messages.first_load_failed(what, failure),
            phase=DeploymentPhase.FAILED,
        )
        failing = state.failing_to_load(LoadFailure(revision=stable.name, message=failure))
        return Assessed(verdict, failing, POLL)
    wait = progress_wait(state, inputs)
    if wait.passed:
        verdict = Verdict(
            ready=False,
            reason=Reason.PROGRESS_DEADLINE_EXCEEDED,
            message=messages.first_missed_deadline(
                what, ready, stable.replicas, inputs.spec.progress_deadline, wait.started
            ),
            phase=DeploymentPhase.FAILED,
        )
    else:
        verdict = Verdict(
            ready=None,
            reason=Reason.DEPLOYING,
            message=messages.first_starting(what, ready, stable.replicas),
            phase=DeploymentPhase.PROGRESSING,
        )
    return Assessed(verdict, state.waiting_since(wait.started), POLL + wait.effects)


def steady(state: RolloutState, inputs: Inputs, verdict: Verdict | None = None) -> Outcome:
    """Only the stable revision (and a kept previous one) runs; `verdict` None: the stable
    revision's own."""
    stable = stable_revision(state, inputs, held=False)
    effects = NOTHING
    if verdict is None:
        assessed = stable_verdict(state, inputs, stable)
        verdict, state, effects = assessed.verdict, assessed.state, assessed.effects
    revisions = [stable, *previous_revision(state, inputs)]
    return outcome(state, revisions, {stable.name: 100}, verdict, effects)


def first_revision(state: RolloutState, inputs: Inputs, name: str, uri: str) -> Outcome:
    """The first revision is deployed directly, whatever the strategy."""
    return steady(state.first_revision(name, uri, inputs.now), inputs)


def model_missing(state: RolloutState, inputs: Inputs) -> Outcome:
    """spec.model.uri resolves to no version: Pending with nothing deployed, else the
    stable revision keeps serving, Degraded, and any candidate goes."""
    problem = messages.model_unresolved(
        inputs.spec.model.uri, inputs.model_error, servable=inputs.model_reason
    )
    # (The status writer's Event of the Ready transition says it once, as a Warning.)
    # Only a model that is not there is fixed in the registry or spec.model.uri.
    about_model = inputs.model_reason in (Reason.MODEL_NOT_FOUND, Reason.MODEL_NOT_SERVABLE)
    if state.stable is None or state.stable_uri is None:
        verdict = Verdict(
            ready=False,
            reason=inputs.model_reason,
            message=messages.model_missing_first(problem) if about_model else problem,
            phase=DeploymentPhase.PENDING,
        )
        return outcome(state, [], {}, verdict)
    verdict = Verdict(
        ready=False,
        reason=inputs.model_reason,
        message=messages.model_missing_serving(problem, state.stable),
        phase=DeploymentPhase.DEGRADED,
    )
    state, aborted = abort_candidate(state, messages.MODEL_UNRESOLVABLE)
    return steady(state, inputs, verdict).after(aborted)


def expire_previous(state: RolloutState, inputs: Inputs) -> tuple[RolloutState, Effects]:
    """The kept previous revision goes once scaleDownDelay has passed; until then the loop
    wakes at it."""
    if state.previous is None:
        return state, NOTHING
    if state.scale_down_at is not None and inputs.now < state.scale_down_at:
        return state, wake_at(state.scale_down_at)
    removed = event(NORMAL, Reason.SCALED_DOWN, messages.previous_expired(state.previous))
    return state.without_previous(), removed


def abort_candidate(state: RolloutState, why: str) -> tuple[RolloutState, Effects]:
    if state.canary is None:
        return state.without_candidate(), NOTHING
    removed = event(NORMAL, Reason.ROLLOUT_ABORTED, messages.rollout_aborted(state.canary, why))
    return state.without_candidate(), removed


def start(state: RolloutState, inputs: Inputs, name: str, uri: str) -> tuple[RolloutState, Effects]:
    """`name` becomes the candidate, unless it already is one."""
    if state.canary == name:
        return state, NOTHING
    message = messages.rollout_started(
        name, uri, state.stable, inputs.spec.strategy.type.value, replacing=state.canary
    )
    return state.with_candidate(name, uri, inputs.now), event(
        NORMAL, Reason.ROLLOUT_STARTED, message
    )


def promote(state: RolloutState, inputs: Inputs, name: str, uri: str, keep_old: bool) -> Outcome:
    """`name` takes all traffic; `keep_old` (BlueGreen) keeps the old stable revision for
    scaleDownDelay, so pointing the model back at it switches back at once."""
    old, old_uri = state.stable, state.stable_uri
    state = state.promoted(name, uri)
    delay = parse_duration(
        (inputs.spec.strategy.blue_green or BlueGreenStrategy()).scale_down_delay
    )
    effects = NOTHING
    if keep_old and delay > timedelta(0) and old is not None:
        if state.previous not in (None, name):
            replaced = messages.previous_replaced(state.previous, old)
            effects += event(NORMAL, Reason.SCALED_DOWN, replaced)
        state = state.keeping_previous(old, old_uri, until=inputs.now + delay)
        effects += wake_at(inputs.now + delay)
    elif state.previous == name:
        state = state.without_previous()
    effects += event(NORMAL, Reason.PROMOTED, messages.promoted(name, uri))
    # The new stable is already at the old one's size; from here the HPA sizes it.
    return steady(state, inputs).after(effects)


def rolled_back_verdict(state: RolloutState, inputs: Inputs) -> Verdict:
    """Why state.rolled_back was rolled back: its pods could not load the model, its
    progress deadline, else its analyses."""
    failure = state.load_failure
    if failure is not None and failure.revision == state.rolled_back:
        return Verdict(
            ready=False,
            reason=Reason.MODEL_LOAD_FAILED,
            message=messages.rolled_back_load_failed(
                failure.revision, failure.message, state.stable
            ),
            phase=DeploymentPhase.ROLLED_BACK,
        )
    missed = state.missed
    if missed is not None and missed.revision == state.rolled_back:
        return Verdict(
            ready=False,
            reason=Reason.PROGRESS_DEADLINE_EXCEEDED,
            message=messages.rolled_back_at_deadline(missed, state.stable),
            phase=DeploymentPhase.ROLLED_BACK,
        )
    analysis = canary_settings(inputs.spec).analysis
    last = state.last_analysis or AnalysisResult()
    return Verdict(
        ready=False,
        reason=Reason.ANALYSIS_FAILED,
        message=messages.rolled_back_after_analyses(
            state.rolled_back,
            analysis.max_failed_checks,
            messages.problems(analysis, last.error_rate, last.latency_p95_ms),
            messages.figures(last.error_rate, last.latency_p95_ms, last.requests),
            state.stable,
        ),
        phase=DeploymentPhase.ROLLED_BACK,
    )


def roll_back(
    state: RolloutState, inputs: Inputs, name: str, missed: MissedDeadline | None = None
) -> Outcome:
    """The candidate `name` goes and the stable serves all traffic; `missed` says it missed
    its progress deadline, else it failed its analyses."""
    state = state.rolled_back_from(name, missed)
    verdict = rolled_back_verdict(state, inputs)
    return steady(state, inputs, verdict).after(event(WARNING, Reason.ROLLED_BACK, verdict.message))


def load_failed(state: RolloutState, inputs: Inputs, name: str, message: str) -> Outcome:
    """The candidate's pods say they cannot load its model: roll it back at once, as one
    that missed its progress deadline, without waiting for the deadline."""
    failure = LoadFailure(revision=name, message=message)
    state = state.rolled_back_from(name, None, failure)
    verdict = rolled_back_verdict(state, inputs)
    return steady(state, inputs, verdict).after(event(WARNING, Reason.ROLLED_BACK, verdict.message))


def deadline_missed(state: RolloutState, inputs: Inputs, name: str, needed: int) -> Outcome:
    """The candidate waited progressDeadline for `needed` ready replicas: roll it back."""
    missed = missed_deadline(inputs, name, needed)
    # The candidate's replicas were still awaited: that readiness poll stands.
    return roll_back(state, inputs, name, missed).after(POLL)


def rolled_back(state: RolloutState, inputs: Inputs) -> Outcome:
    """The model still points at the rolled back revision: it is not tried again, and while
    the stable serves with all its replicas the phase stays RolledBack."""
    state = state.without_candidate()
    assessed = stable_verdict(state, inputs, stable_revision(state, inputs, held=False))
    verdict = assessed.verdict
    if verdict.ready:
        verdict = rolled_back_verdict(assessed.state, inputs)
    return steady(assessed.state, inputs, verdict).after(assessed.effects)
