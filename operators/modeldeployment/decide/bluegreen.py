"""The BlueGreen strategy, a pure function of (state, inputs) for one candidate, and the
switch back to the revision it keeps.

BlueGreen: the candidate comes up at the stable's size, like Rolling's, but the switch waits
for approval unless autoPromote (the `mlops.maestro.dev/promote: <revision>` annotation, read
by the handler), and the old revision is kept, at its size, until scaleDownDelay has passed:
pointing the model back at it within that time switches back at once.
"""

from __future__ import annotations

from maestro.operators.api.common import Reason
from maestro.operators.api.modeldeployment import BlueGreenStrategy
from maestro.operators.core.verdict import Verdict
from maestro.operators.modeldeployment.decide import messages
from maestro.operators.modeldeployment.decide.inputs import PROMOTE_ANNOTATION, Inputs
from maestro.operators.modeldeployment.decide.outcome import NOTHING, POLL, Outcome, outcome
from maestro.operators.modeldeployment.decide.plan import Revision, Role
from maestro.operators.modeldeployment.decide.revisions import (
    held_floor,
    previous_revision,
    revision,
    stable_revision,
)
from maestro.operators.modeldeployment.decide.rollout import (
    abort_candidate,
    deadline_missed,
    progressing,
    promote,
)
from maestro.operators.modeldeployment.decide.state import RolloutState
from maestro.operators.modeldeployment.decide.waits import progress_wait, replicas_ready


def blue_green(state: RolloutState, inputs: Inputs, name: str, uri: str) -> Outcome:
    """Preview `name` (serving `uri`) beside the stable; once ready it is promoted if
    autoPromote or approved, and the old stable is kept for scaleDownDelay."""
    state = state.previewing()
    settings = inputs.spec.strategy.blue_green or BlueGreenStrategy()
    floor = held_floor(inputs, state.stable)
    stable = stable_revision(state, inputs, held=True)
    preview = revision(inputs.spec, name, uri, Role.PREVIEW, floor)
    effects = NOTHING
    verdict: Verdict
    if not replicas_ready(inputs, name, floor):
        wait = progress_wait(state, inputs)
        if wait.passed:
            return deadline_missed(state, inputs, name, floor)
        state, effects = state.waiting_since(wait.started), POLL + wait.effects
        ready = inputs.observed(name).ready_replicas
        verdict = progressing(
            Reason.DEPLOYING, messages.preview_starting(name, uri, ready, floor, stable.name)
        )
    elif settings.auto_promote or inputs.approved_revision == name:
        return promote(state.replicas_ready(name), inputs, name, uri, keep_old=True)
    else:
        # Awaiting approval is not a wait for replicas: progressDeadline stops here.
        state = state.replicas_ready(name)
        verdict = progressing(
            Reason.AWAITING_PROMOTION,
            messages.awaiting_promotion(name, uri, stable.name, PROMOTE_ANNOTATION),
        )
    revisions = [stable, preview, *previous_revision(state, inputs)]
    return outcome(state, revisions, {stable.name: 100}, verdict, effects)


def ready_previous(state: RolloutState, inputs: Inputs) -> Revision | None:
    """The kept previous revision, if it has the replicas to take all traffic at once."""
    assert state.previous is not None and state.previous_uri is not None
    (previous,) = previous_revision(state, inputs)
    return previous if replicas_ready(inputs, previous.name, previous.replicas) else None


def switch_back(state: RolloutState, inputs: Inputs, previous: Revision) -> Outcome:
    """The model points at the kept `previous` revision again: switch to it at once."""
    state, aborted = abort_candidate(state, messages.points_at_previous(previous.name))
    return promote(state, inputs, previous.name, previous.model_uri, keep_old=True).after(aborted)
