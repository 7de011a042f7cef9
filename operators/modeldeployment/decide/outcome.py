"""The values the rollout functions return and combine, and how one becomes a `Decision`.

A rollout function returns an `Outcome`: the new state, the plan, the verdict, and its
`Effects` (the Events to emit, the times to wake at, whether to poll readiness). Effects of
earlier steps are added in front with `Outcome.after`, so Events keep the order in which
they happened. `decision` turns the final Outcome into what the handler applies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from maestro.operators.api.common import Reason
from maestro.operators.api.modeldeployment import DeploymentPhase
from maestro.operators.core.verdict import Verdict
from maestro.operators.modeldeployment.decide.inputs import Inputs
from maestro.operators.modeldeployment.decide.plan import (
    Decision,
    Event,
    Mirror,
    Revision,
    RevisionPlan,
)
from maestro.operators.modeldeployment.decide.state import RolloutState

# How soon to look again while waiting for replicas, should no Deployment event come first.
READINESS_POLL_SECONDS = 5.0


@dataclass(frozen=True)
class Effects:
    """What a step asks for besides its state: Events, wake-ups, readiness polls."""

    events: tuple[Event, ...] = ()
    wake: tuple[datetime, ...] = ()
    # Replicas are awaited: look again after READINESS_POLL_SECONDS.
    poll: bool = False

    def __add__(self, later: Effects) -> Effects:
        return Effects(self.events + later.events, self.wake + later.wake, self.poll or later.poll)


NOTHING = Effects()
POLL = Effects(poll=True)


def event(type_: str, reason: Reason, message: str) -> Effects:
    return Effects(events=(Event(type_, reason, message),))


def wake_at(moment: datetime) -> Effects:
    return Effects(wake=(moment,))


@dataclass(frozen=True)
class Outcome:
    """What one rollout function decided."""

    state: RolloutState
    plan: RevisionPlan
    verdict: Verdict
    effects: Effects = NOTHING

    def after(self, earlier: Effects) -> Outcome:
        """This outcome, preceded by the effects of the steps that led to it."""
        return replace(self, effects=earlier + self.effects)


def outcome(
    state: RolloutState,
    revisions: Iterable[Revision],
    weights: Mapping[str, int],
    verdict: Verdict,
    effects: Effects = NOTHING,
    mirror: Mirror | None = None,
) -> Outcome:
    """An Outcome whose plan runs `revisions`, with live traffic on those of `weights` over
    zero."""
    traffic = {name: w for name, w in weights.items() if w > 0}
    return Outcome(state, RevisionPlan(tuple(revisions), traffic, mirror), verdict, effects)


def requeue_after(effects: Effects, now: datetime) -> float | None:
    """Seconds until the earliest wake-up or readiness poll; None if nothing is awaited."""
    # A time already past (an analysis due but no figures given) is retried after a pause
    # rather than at once.
    seconds = [
        (t - now).total_seconds() if t > now else READINESS_POLL_SECONDS for t in effects.wake
    ]
    if effects.poll:
        seconds.append(READINESS_POLL_SECONDS)
    return max(1.0, min(seconds)) if seconds else None


def decision(result: Outcome, inputs: Inputs) -> Decision:
    """The Decision the handler applies; status.readyReplicas counts revisions with traffic."""
    serving = sum(inputs.observed(name).ready_replicas for name in result.plan.weights)
    return Decision(
        result.plan,
        result.verdict,
        result.state.wire(serving),
        result.effects.events,
        requeue_after(result.effects, inputs.now),
    )


def not_configured(uri: str) -> Verdict:
    return Verdict(
        ready=False,
        reason=Reason.NOT_CONFIGURED,
        message=(
            f"spec.model.uri {uri} needs MLflow, and the operator has no tracking URI: set"
            " MAESTRO_MLFLOW_TRACKING_URI in its Deployment."
        ),
        phase=DeploymentPhase.PENDING,
    )
