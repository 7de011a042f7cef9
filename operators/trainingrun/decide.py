"""TrainingRun lifecycle decisions, without I/O.

The reconciler gathers facts (the run's stored status, its job, the job's pods, the other
runs of the namespace, the study's trials) and these functions decide: may it start, is it
queued, how did its job end, which trial's model is registered, what status to report.
Each returns a Verdict (Ready condition + phase) with a reason from the shared vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from maestro.operators.api.common import Reason
from maestro.operators.api.trainingrun import (
    DISTRIBUTED_FRAMEWORKS,
    Direction,
    Objective,
    TrainingPhase,
    TrainingRunSpec,
)
from maestro.operators.core.verdict import Check, Verdict, first_failure

TERMINAL = frozenset({TrainingPhase.SUCCEEDED.value, TrainingPhase.FAILED.value})
# Promotion belongs to governance: a TrainingRun may only propose a model.
RESERVED_ALIASES = frozenset({"champion"})


@dataclass(frozen=True)
class OperatorFacts:
    """What the operator is configured with, as far as starting a run depends on it."""

    tracking_configured: bool
    optuna_configured: bool
    kubeflow: bool


def _failed(reason: Reason, message: str) -> Verdict:
    return Verdict(ready=False, reason=reason, message=message, phase=TrainingPhase.FAILED)


def _pending(reason: Reason, message: str) -> Verdict:
    return Verdict(ready=False, reason=reason, message=message, phase=TrainingPhase.PENDING)


def check_spec(spec: TrainingRunSpec, facts: OperatorFacts) -> Verdict | None:
    """Why the run cannot start (None: it can). Runs before anything is created."""

    def tracking() -> Verdict | None:
        if facts.tracking_configured:
            return None
        return _pending(
            Reason.NOT_CONFIGURED,
            "The operator has no MLflow tracking URI; set MAESTRO_MLFLOW_TRACKING_URI on the"
            " operator Deployment.",
        )

    def optuna() -> Verdict | None:
        if spec.tuning is None or facts.optuna_configured:
            return None
        return _pending(
            Reason.NOT_CONFIGURED,
            "spec.tuning needs an Optuna storage, and the operator has none; set"
            " MAESTRO_OPTUNA_STORAGE on the operator Deployment (from a Secret).",
        )

    def alias() -> Verdict | None:
        if spec.register_as is None or spec.register_as.alias.lower() not in RESERVED_ALIASES:
            return None
        return _failed(
            Reason.ALIAS_NOT_ALLOWED,
            f"spec.registerAs.alias {spec.register_as.alias!r} is reserved: promotion to"
            " champion belongs to governance. Use an alias such as candidate.",
        )

    def tuning_workers() -> Verdict | None:
        if spec.tuning is None or spec.workers == 1:
            return None
        return _failed(
            Reason.INVALID_SPEC,
            "spec.tuning runs each trial in one pod, so it needs spec.workers: 1; use"
            " tuning.parallelism for trials at the same time.",
        )

    def kubeflow() -> Verdict | None:
        if facts.kubeflow or spec.workers == 1 or spec.framework not in DISTRIBUTED_FRAMEWORKS:
            return None
        return _failed(
            Reason.INVALID_SPEC,
            f"spec.workers {spec.workers} needs Kubeflow's training operator, which this"
            " operator is configured without (MAESTRO_KUBEFLOW=false); use workers: 1.",
        )

    checks: list[Check] = [tracking, optuna, alias, tuning_workers, kubeflow]
    verdict = first_failure(checks, _ACCEPTED)
    return None if verdict is _ACCEPTED else verdict


_ACCEPTED = Verdict(ready=None, reason=Reason.ACCEPTED, message="", phase=TrainingPhase.PENDING)


# --- the per-namespace queue -------------------------------------------------------------


@dataclass(frozen=True)
class RunFacts:
    """One TrainingRun of the namespace, as the queue sees it."""

    name: str
    created: str  # metadata.creationTimestamp (RFC 3339 sorts as text)
    phase: str | None
    started: bool  # it has an MLflow run, i.e. it holds a slot until it ends
    uid: str = ""


def _waiting(run: RunFacts) -> bool:
    return not run.started and run.phase in (
        None,
        TrainingPhase.PENDING.value,
        TrainingPhase.QUEUED.value,
    )


def admit(
    me: RunFacts, runs: Iterable[RunFacts], limit: int, starting: Iterable[str] = ()
) -> Verdict | None:
    """None when `me` may start now; else the Queued verdict.

    Slots are taken by started runs that have not ended, and by runs this operator is
    starting right now (`starting`: their status does not show it yet). Waiting runs go
    first-come first-served: `me` starts only if the runs created before it fit as well.
    """
    others = [r for r in runs if r.name != me.name]
    busy = {r.name for r in others if r.started and r.phase not in TERMINAL}
    busy |= set(starting) - {me.name}
    ahead = [r for r in others if _waiting(r) and r.name not in busy and _key(r) < _key(me)]
    if len(busy) + len(ahead) < limit:
        return None
    return Verdict(
        ready=None,
        reason=Reason.QUEUED,
        message=(
            f"{len(busy)} of {limit} TrainingRuns allowed at once in this namespace are"
            f" running and {len(ahead)} queued before this one; it starts when a slot frees."
        ),
        phase=TrainingPhase.QUEUED,
    )


def _key(run: RunFacts) -> tuple[str, str]:
    return (run.created, run.name)


def to_wake(runs: Iterable[RunFacts], limit: int) -> list[str]:
    """The Queued runs that the free slots may start now, first come first. Runs not yet
    looked at (no phase, Pending) come with their own event, and Queued runs beyond the
    free slots would only be queued again: waking every waiting run at each completion
    made 1,000 runs cost about 70,000 reconciles a minute and 1.2 GB of pending work
    (`make bench-operator`)."""
    runs = list(runs)
    busy = sum(1 for r in runs if r.started and r.phase not in TERMINAL)
    queued = (r for r in runs if not r.started and r.phase == TrainingPhase.QUEUED.value)
    return [r.name for r in sorted(queued, key=_key)[: max(0, limit - busy)]]


# --- the job ---------------------------------------------------------------------------


@dataclass(frozen=True)
class JobState:
    """How the run's job stands, from its status."""

    finished: bool = False
    succeeded: bool = False
    reason: str | None = None
    message: str | None = None
    active: int = 0


def _true_condition(status: Mapping[str, Any], types: Sequence[str]) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") in types and condition.get("status") == "True":
            return dict(condition)
    return None


def job_state(kind: str, job: Mapping[str, Any]) -> JobState:
    """Read a batch Job (Complete/Failed) or a Kubeflow job (Succeeded/Failed) status."""
    status = job.get("status") or {}
    if kind == "Job":
        active = int(status.get("active") or 0)
        done, failed = ("Complete",), ("Failed",)
    else:
        replicas = (status.get("replicaStatuses") or {}).values()
        active = sum(int(r.get("active") or 0) for r in replicas)
        done, failed = ("Succeeded",), ("Failed",)
    if (condition := _true_condition(status, failed)) is not None:
        return JobState(
            finished=True,
            reason=condition.get("reason"),
            message=condition.get("message"),
            active=active,
        )
    if (condition := _true_condition(status, done)) is not None:
        return JobState(finished=True, succeeded=True, reason=condition.get("reason"))
    return JobState(active=active)


def pod_failures(pods: Iterable[Mapping[str, Any]]) -> list[str]:
    """'pod p: container c exited with code N (reason)' for each failed container."""
    found = []
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name"))):
        name = (pod.get("metadata") or {}).get("name")
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            state = container.get("state") or {}
            last = container.get("lastState") or {}
            terminated = state.get("terminated") or last.get("terminated")
            if terminated and terminated.get("exitCode") not in (None, 0):
                found.append(
                    f"pod {name}: container {container.get('name')} exited with code"
                    f" {terminated['exitCode']} ({terminated.get('reason') or 'Error'})"
                )
    return found


def job_failed(
    job: JobState, pods: Iterable[Mapping[str, Any]], job_ref: str, error: str | None = None
) -> Verdict:
    """The Failed verdict for a job that failed, with the job's reason, the pods' exits and
    the error the trainer recorded on the MLflow run (contract.TAG_ERROR), if any."""
    text = f"{job.reason or ''} {job.message or ''}".lower()
    if job.reason == "DeadlineExceeded" or "deadline" in text:
        reason = Reason.DEADLINE_EXCEEDED
    elif job.reason == "BackoffLimitExceeded" or "backoff" in text:
        reason = Reason.BACKOFF_LIMIT_EXCEEDED
    else:
        reason = Reason.JOB_FAILED
    parts = [f"{job_ref} failed: {job.message or job.reason or 'no reason given'}."]
    failures = pod_failures(pods)
    if failures:
        shown = "; ".join(failures[:3])
        more = f" (and {len(failures) - 3} more)" if len(failures) > 3 else ""
        parts.append(f"{shown}{more}.")
    if error:
        parts.append(f"Trainer error: {error}")
    return _failed(reason, " ".join(parts))


# --- the study -------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialFacts:
    """One finished trial of the study."""

    number: int
    values: tuple[float, ...]
    params: Mapping[str, Any] = field(default_factory=dict)
    run_id: str | None = None


@dataclass(frozen=True)
class StudyFacts:
    """Trial counts and the best trials of the study."""

    running: int = 0
    completed: int = 0
    pruned: int = 0
    failed: int = 0
    best: TrialFacts | None = None
    pareto: tuple[TrialFacts, ...] = ()

    @property
    def finished(self) -> int:
        return self.completed + self.pruned + self.failed


def model_trial(study: StudyFacts, objectives: Sequence[Objective]) -> TrialFacts | None:
    """The trial whose model is registered: the best one, or for a Pareto front the front
    member best on the first objective (lowest trial number on ties)."""
    if study.best is not None:
        return study.best
    if not study.pareto:
        return None
    sign = -1.0 if objectives and objectives[0].direction == Direction.MAXIMIZE else 1.0
    return min(study.pareto, key=lambda t: (sign * t.values[0] if t.values else 0.0, t.number))


def no_trial_completed(study: StudyFacts, trials: int) -> Verdict:
    return _failed(
        Reason.TRIAL_BUDGET_SPENT,
        f"All {study.finished} of {trials} trials ended without a result"
        f" ({study.pruned} pruned, {study.failed} failed); no model to report. See the"
        " failed trials' MLflow runs and the trainer pods' logs.",
    )


def trial_status(trial: TrialFacts) -> dict[str, Any]:
    """A trial as status.bestTrial / status.paretoFront entries (wire names)."""
    out: dict[str, Any] = {
        "number": trial.number,
        "values": list(trial.values),
        "params": dict(trial.params),
    }
    if trial.run_id:
        out["mlflowRunId"] = trial.run_id
    return out


def trials_status(study: StudyFacts, requested: int) -> dict[str, Any]:
    return {
        "total": requested,
        "running": study.running,
        "completed": study.completed,
        "pruned": study.pruned,
        "failed": study.failed,
    }


# --- verdicts of the ordinary lifecycle ---------------------------------------------------


def starting() -> Verdict:
    return Verdict(
        ready=None,
        reason=Reason.STARTING,
        message="MLflow run created; creating the training job.",
        phase=TrainingPhase.RUNNING,
    )


def running(job_ref: str, job: JobState) -> Verdict:
    return Verdict(
        ready=None,
        reason=Reason.RUNNING,
        message=f"{job_ref} is running ({job.active} active pods).",
        phase=TrainingPhase.RUNNING,
    )


def succeeded(model: str | None) -> Verdict:
    return Verdict(
        ready=True,
        reason=Reason.SUCCEEDED,
        message=f"Training succeeded; {model}." if model else "Training succeeded.",
        phase=TrainingPhase.SUCCEEDED,
    )


def registration_failed(error: str) -> Verdict:
    return _failed(
        Reason.REGISTRATION_FAILED,
        f"Training succeeded but the model could not be registered: {error}",
    )


def tracking_unavailable(phase: str | None, error: str) -> Verdict:
    """MLflow or the Optuna storage failed; the operator retries with a back-off."""
    return Verdict(
        ready=None,
        reason=Reason.TRACKING_UNAVAILABLE,
        message=f"Retrying: {error}",
        phase=phase or TrainingPhase.PENDING,
    )


def elapsed_after(start: datetime | None, now: datetime) -> datetime:
    """A completion time never before the start time (clocks of different hosts)."""
    return max(start, now) if start is not None else now
