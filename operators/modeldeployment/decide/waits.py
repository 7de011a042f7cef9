"""Waiting for replicas: whether a revision has them, and where its wait stands against
spec.progressDeadline. Each function answers; the caller applies the state it implies.

Progress deadline (spec.progressDeadline, default 10m), as a Deployment's
progressDeadlineSeconds one level up: a revision waiting for the replicas it needs must have
them ready within it. A wait starts when a candidate's rollout starts (or the first revision
is created) and again whenever the candidate must come up once more: a canary scaling for its
next step or to the stable's size, a shadow whose pods lost readiness. status.progressStartedAt
records it and goes once the replicas are ready; held steps, analyses and a blue/green preview
awaiting approval do not count. A candidate that misses it is rolled back as a failed analysis
is: removed, phase RolledBack, Ready=False ProgressDeadlineExceeded naming its ready replicas
(kept in status.missedDeadline), a Warning Event, and not retried until spec.model.uri
resolves to another revision. A first revision has nothing to fall back to: its Deployment is
kept, since it may still come up, and the phase is Failed (nothing serves the model) rather
than Degraded (a revision that served has lost replicas), with Ready=False
ProgressDeadlineExceeded, whose transition is the Warning Event; once ready it is Available.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from maestro.operators.api.modeldeployment import MissedDeadline
from maestro.operators.modeldeployment.decide.inputs import Inputs
from maestro.operators.modeldeployment.decide.names import parse_duration
from maestro.operators.modeldeployment.decide.outcome import NOTHING, Effects, wake_at
from maestro.operators.modeldeployment.decide.state import RolloutState


def replicas_ready(inputs: Inputs, name: str, needed: int) -> bool:
    """Whether revision `name` has `needed` ready replicas of its current pod template."""
    return inputs.observed(name).ready_replicas >= needed


@dataclass(frozen=True)
class ProgressWait:
    """The running wait for replicas, measured against spec.progressDeadline."""

    started: datetime  # status.progressStartedAt; now if no wait ran, so one starts
    deadline: datetime
    passed: bool

    @property
    def effects(self) -> Effects:
        """A wait within its deadline wakes the loop at it, not a poll later."""
        return NOTHING if self.passed else wake_at(self.deadline)


def progress_wait(state: RolloutState, inputs: Inputs) -> ProgressWait:
    """Where the wait recorded in `state` stands now; the caller records `started`."""
    started = inputs.now if state.progress_started is None else state.progress_started
    deadline = started + parse_duration(inputs.spec.progress_deadline)
    return ProgressWait(started, deadline, passed=inputs.now >= deadline)


def missed_deadline(inputs: Inputs, name: str, needed: int) -> MissedDeadline:
    """What status.missedDeadline says of revision `name`, short of `needed` replicas."""
    return MissedDeadline(
        revision=name,
        ready_replicas=inputs.observed(name).ready_replicas,
        replicas=needed,
        deadline=inputs.spec.progress_deadline,
    )
