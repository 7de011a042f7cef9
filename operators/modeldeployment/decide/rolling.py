"""The Rolling strategy, a pure function of (state, inputs) for one candidate.

Rolling: the candidate comes up at the stable's size; traffic switches to it once all its
replicas are ready and the old revision is removed (zero downtime, no gradual shift).
"""

from __future__ import annotations

from maestro.operators.api.common import Reason
from maestro.operators.modeldeployment.decide import messages
from maestro.operators.modeldeployment.decide.inputs import Inputs
from maestro.operators.modeldeployment.decide.outcome import POLL, Outcome, outcome
from maestro.operators.modeldeployment.decide.plan import Role
from maestro.operators.modeldeployment.decide.revisions import (
    held_floor,
    previous_revision,
    revision,
    stable_revision,
)
from maestro.operators.modeldeployment.decide.rollout import deadline_missed, progressing, promote
from maestro.operators.modeldeployment.decide.state import RolloutState
from maestro.operators.modeldeployment.decide.waits import progress_wait, replicas_ready


def rolling(state: RolloutState, inputs: Inputs, name: str, uri: str) -> Outcome:
    """Candidate `name` (serving `uri`) beside the stable until all its replicas are ready,
    then promoted; the old stable goes."""
    state = state.previewing()
    floor = held_floor(inputs, state.stable)
    if replicas_ready(inputs, name, floor):
        return promote(state.replicas_ready(name), inputs, name, uri, keep_old=False)
    wait = progress_wait(state, inputs)
    if wait.passed:
        return deadline_missed(state, inputs, name, floor)
    state = state.waiting_since(wait.started)
    stable = stable_revision(state, inputs, held=True)
    candidate = revision(inputs.spec, name, uri, Role.PREVIEW, floor)
    ready = inputs.observed(name).ready_replicas
    verdict = progressing(
        Reason.DEPLOYING, messages.rolling_starting(name, uri, ready, floor, stable.name)
    )
    return outcome(
        state,
        [stable, candidate, *previous_revision(state, inputs)],
        {stable.name: 100},
        verdict,
        POLL + wait.effects,
    )
