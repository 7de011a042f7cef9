"""The Canary strategy, a pure function of (state, inputs) for one candidate, and the
judgement of its analyses.

Canary: the candidate gets each step's weight once it has the replicas for it, holds it for
stepDuration, and moves on when the latest analysis of the step passed. An analysis runs
every interval; it is judged once the canary served minRequests in the window and fails when
the error rate or the p95 latency is over its limit. maxFailedChecks failures roll back: the
candidate is removed, phase RolledBack, and the same revision is not tried again until
spec.model.uri resolves to another one. After the last step the candidate is scaled to the
stable's size, then promoted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from maestro.operators.api.common import Reason
from maestro.operators.api.modeldeployment import (
    AnalysisResult,
    CanaryAnalysis,
    CanaryStrategy,
)
from maestro.operators.core.verdict import Verdict
from maestro.operators.modeldeployment.decide import messages
from maestro.operators.modeldeployment.decide.inputs import (
    CanaryFigures,
    Inputs,
    canary_settings,
    next_analysis,
)
from maestro.operators.modeldeployment.decide.names import parse_duration, share
from maestro.operators.modeldeployment.decide.outcome import (
    NOTHING,
    POLL,
    Effects,
    Outcome,
    event,
    outcome,
    wake_at,
)
from maestro.operators.modeldeployment.decide.plan import NORMAL, WARNING, Revision, Role
from maestro.operators.modeldeployment.decide.revisions import (
    previous_revision,
    revision,
    stable_revision,
)
from maestro.operators.modeldeployment.decide.rollout import (
    deadline_missed,
    progressing,
    promote,
    roll_back,
)
from maestro.operators.modeldeployment.decide.state import RolloutState
from maestro.operators.modeldeployment.decide.waits import progress_wait, replicas_ready


def judge(analysis: CanaryAnalysis, figures: CanaryFigures) -> bool | None:
    """True: every gate passed; False: one failed; None: too few requests to judge."""
    if figures.requests is None or figures.requests < analysis.min_requests:
        return None
    return not messages.problems(analysis, figures.error_rate, figures.latency_p95_ms)


@dataclass(frozen=True)
class _Canary:
    """The fixed parts of one canary decision: the candidate, its settings, the stable."""

    inputs: Inputs
    name: str
    uri: str
    settings: CanaryStrategy
    stable: Revision

    @property
    def steps(self) -> list[int]:
        return self.settings.steps

    @property
    def analysis(self) -> CanaryAnalysis:
        return self.settings.analysis

    @property
    def floor(self) -> int:
        return self.stable.replicas

    @property
    def step_duration(self) -> timedelta:
        return parse_duration(self.settings.step_duration)

    @property
    def now(self) -> datetime:
        return self.inputs.now

    @property
    def ready(self) -> int:
        """The candidate's ready replicas now."""
        return self.inputs.observed(self.name).ready_replicas

    def where(self, step: int) -> str:
        return messages.step_of(step, len(self.steps))

    def plan(
        self, state: RolloutState, replicas: int, verdict: Verdict, effects: Effects
    ) -> Outcome:
        """The stable and the canary at `replicas`, splitting traffic by state.weight."""
        canary = revision(self.inputs.spec, self.name, self.uri, Role.CANARY, replicas)
        weight = state.weight or 0
        return outcome(
            state,
            [self.stable, canary, *previous_revision(state, self.inputs)],
            {self.stable.name: 100 - weight, self.name: weight},
            verdict,
            effects,
        )

    def waiting(self, state: RolloutState, replicas: int, message: str) -> Outcome:
        """The canary waits for `replicas` ready ones, rolled back at progressDeadline."""
        wait = progress_wait(state, self.inputs)
        if wait.passed:
            return deadline_missed(state, self.inputs, self.name, replicas)
        verdict = progressing(Reason.CANARY_PROGRESSING, message)
        return self.plan(state.waiting_since(wait.started), replicas, verdict, POLL + wait.effects)


def canary(state: RolloutState, inputs: Inputs, name: str, uri: str) -> Outcome:
    """Candidate `name` (`uri`) at the weight of its step: entering the step once it has the
    replicas, analysed every interval, moved on after stepDuration and a passed analysis,
    promoted after the last step, rolled back after maxFailedChecks failed analyses."""
    c = _Canary(
        inputs, name, uri, canary_settings(inputs.spec), stable_revision(state, inputs, held=True)
    )
    if state.step is None:
        state = replace(state, step_started=None)
    step = min(state.step or 0, len(c.steps) - 1)  # the steps may have been edited
    state = replace(state, step=step)
    effects = NOTHING
    if state.step_started is None:
        replicas = share(c.floor, c.steps[step])
        if not replicas_ready(inputs, name, replicas):
            message = messages.canary_starting(name, uri, c.ready, replicas, c.steps[step])
            return c.waiting(replace(state, weight=0), replicas, message)
        state = replace(state.replicas_ready(name), step_started=c.now)
        entered = messages.step_advanced(name, c.steps[step], c.where(step))
        effects = event(NORMAL, Reason.STEP_ADVANCED, entered)
    state = replace(state, weight=c.steps[step])

    due = next_analysis(inputs.spec, state.status())
    if inputs.analysis is not None and due is not None and c.now >= due:
        state, analysed = _analysed(c, state, inputs.analysis)
        effects += analysed
        failed_now = state.last_analysis is not None and state.last_analysis.passed is False
        if failed_now and (state.failed or 0) >= c.analysis.max_failed_checks:
            return roll_back(state, inputs, name).after(effects)

    assert state.step_started is not None
    last = state.last_analysis
    passed_here = bool(last and last.passed and last.time and last.time >= state.step_started)
    step_end = state.step_started + c.step_duration
    if c.now >= step_end and passed_here:
        return _step_passed(c, state, step).after(effects)
    return _holding(c, state, step, step_end).after(effects)


def _analysed(
    c: _Canary, state: RolloutState, figures: CanaryFigures
) -> tuple[RolloutState, Effects]:
    """The analysis of `figures` as status.lastAnalysis; a failed one is counted."""
    passed = judge(c.analysis, figures)
    result = AnalysisResult(
        time=c.now,
        error_rate=figures.error_rate,
        latency_p95_ms=figures.latency_p95_ms,
        requests=None if figures.requests is None else round(figures.requests),
        passed=passed,
    )
    state = replace(state, last_analysis=result)
    if passed is not False:
        return state, NOTHING
    failed = (state.failed or 0) + 1
    message = messages.check_failed(
        c.name,
        failed,
        c.analysis.max_failed_checks,
        messages.problems(c.analysis, figures.error_rate, figures.latency_p95_ms),
        messages.figures(figures.error_rate, figures.latency_p95_ms, figures.requests),
    )
    return replace(state, failed=failed), event(WARNING, Reason.CHECK_FAILED, message)


def _step_passed(c: _Canary, state: RolloutState, step: int) -> Outcome:
    """Step `step` held its duration and passed: the next step's weight once the canary has
    its replicas, else (after the last step) promotion once it has the stable's size."""
    if step + 1 < len(c.steps):
        nxt = c.steps[step + 1]
        replicas = share(c.floor, nxt)
        if not replicas_ready(c.inputs, c.name, replicas):
            message = messages.canary_scaling_for_step(
                c.name, c.where(step), state.weight, replicas, nxt, c.ready
            )
            return c.waiting(state, replicas, message)
        state = replace(state.replicas_ready(c.name), step=step + 1, step_started=c.now, weight=nxt)
        advanced = messages.step_advanced(c.name, nxt, c.where(step + 1))
        # The new step's first analysis, or its end if that comes first.
        first_look = c.now + min(c.step_duration, parse_duration(c.analysis.interval))
        effects = event(NORMAL, Reason.STEP_ADVANCED, advanced) + wake_at(first_look)
        verdict = progressing(
            Reason.CANARY_PROGRESSING, messages.canary_at(c.name, nxt, c.where(step + 1))
        )
        return c.plan(state, replicas, verdict, effects)
    if replicas_ready(c.inputs, c.name, c.floor):
        return promote(state.replicas_ready(c.name), c.inputs, c.name, c.uri, keep_old=False)
    message = messages.canary_scaling_for_promotion(c.name, c.floor, c.ready)
    return c.waiting(state, c.floor, message)


def _holding(c: _Canary, state: RolloutState, step: int, step_end: datetime) -> Outcome:
    """The step holds its weight until its duration is over and an analysis of it passed;
    the loop wakes for the next analysis and for the step's end."""
    assert state.step_started is not None
    effects = NOTHING
    due = next_analysis(c.inputs.spec, state.status())
    retry = c.inputs.analysis_retry_at
    if due is not None:
        # Figures that could not be read are asked for again after the back-off, not at
        # once: a Prometheus outage is no reason for a tight loop.
        effects += wake_at(max(due, retry) if retry is not None else due)
    if c.now < step_end:
        effects += wake_at(step_end)
    last = state.last_analysis
    if c.inputs.analysis_error:
        result = messages.analysis_unavailable(c.inputs.analysis_error)
    elif last is None or last.time is None or last.time < state.step_started:
        result = messages.NO_ANALYSIS_YET
    elif last.passed is None:
        result = messages.analysis_inconclusive(last.requests, c.analysis.min_requests)
    else:
        figures = messages.figures(last.error_rate, last.latency_p95_ms, last.requests)
        result = messages.analysis_judged(last.passed, figures)
    message = messages.canary_holding(
        c.name,
        state.weight,
        c.where(step),
        state.step_started,
        result,
        state.failed,
        c.analysis.max_failed_checks,
    )
    verdict = progressing(Reason.CANARY_PROGRESSING, message)
    return c.plan(state, share(c.floor, c.steps[step]), verdict, effects)
