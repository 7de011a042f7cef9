"""DriftCheck decisions, pure.

`preconditions`: whether the check can be scheduled at all (its ModelDeployment and
TrainingRuns exist, its reference resolves to a dataset, a prediction-log window has an
object store to read). `decide`: once the CronJob is applied, what the newest finished run
says (status, condition, Events) and whether it starts a retrain. The controller gathers
the facts, applies the CronJob, reads the newest finished Job's termination message and
passes it all in.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from maestro.monitoring.contract import DriftFailure, DriftResult
from maestro.operators.api.common import Reason
from maestro.operators.api.driftcheck import (
    DriftCheckSpec,
    DriftCheckStatus,
    DriftPhase,
    Severity,
)
from maestro.operators.core.durations import parse_duration
from maestro.operators.core.verdict import (
    DeploymentFacts,
    Verdict,
    deployment_missing,
    first_failure,
    training_run_missing,
)

# Status fields that describe one run's result.
RUN_FIGURES = (
    "driftShare",
    "severity",
    "driftedColumns",
    "columns",
    "columnsTruncated",
    "reportUri",
    "mlflowRunId",
)
SEVERITY_ORDER = {Severity.OK: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
# The job's own failure reasons that have a name in the shared vocabulary.
RUN_FAILURES = {
    r.value: r
    for r in (
        Reason.REFERENCE_UNREADABLE,
        Reason.CURRENT_UNREADABLE,
        Reason.COLUMN_MISSING,
        Reason.EMPTY_DATA,
        Reason.ALL_NULL_COLUMN,
        Reason.UNSUPPORTED_FORMAT,
        Reason.TRACKING_UNAVAILABLE,
    )
}


@dataclass(frozen=True)
class Facts:
    """What exists, as the controller found it."""

    deployments: Mapping[str, DeploymentFacts]
    training_runs: Set[str]
    # spec.reference.trainingRun's spec.dataset.uri, when it names one.
    training_run_dataset: str | None = None
    prediction_log_configured: bool = False


@dataclass(frozen=True)
class FinishedRun:
    """The newest finished Job of the check."""

    job: str
    finished_at: datetime
    succeeded: bool
    outcome: DriftResult | DriftFailure | None  # None: no readable message
    truncated: bool = False
    message: str = ""  # the raw message or the Job's own failure reason


@dataclass(frozen=True)
class RetrainFacts:
    template_spec: Mapping[str, Any] | None = None
    open_runs: tuple[str, ...] = ()  # retrain runs of this check that have not ended
    # When the newest retrain run of this check was created: the cooldown holds even when
    # the status write after creating it was lost (an operator restart in between).
    last_created: datetime | None = None


@dataclass(frozen=True)
class Inputs:
    spec: DriftCheckSpec
    status: DriftCheckStatus
    now: datetime
    cron_job: str
    reference_uri: str
    schedule_error: str | None = None
    last_run: FinishedRun | None = None
    retrain: RetrainFacts = field(default_factory=RetrainFacts)


@dataclass
class Outcome:
    verdict: Verdict
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, Reason, str]] = field(default_factory=list)
    # Start a retrain: the job whose result asked for it and its severity.
    retrain_for: tuple[str, str] | None = None


def reference_uri(spec: DriftCheckSpec, facts: Facts) -> str | None:
    return spec.reference.uri or facts.training_run_dataset


def preconditions(spec: DriftCheckSpec, facts: Facts) -> Verdict | None:
    """The first reason the check cannot be scheduled, or None."""
    retrain = spec.on_drift.retrain if spec.on_drift else None

    def reference_missing() -> Verdict | None:
        if reference_uri(spec, facts):
            return None
        return Verdict(
            ready=False,
            reason=Reason.REFERENCE_MISSING,
            message=(
                f"TrainingRun {spec.reference.training_run!r} (spec.reference.trainingRun)"
                " names no spec.dataset.uri, so there is no reference data; name a dataset"
                " in the TrainingRun or set spec.reference.uri."
            ),
            phase=DriftPhase.PENDING.value,
        )

    def no_object_store() -> Verdict | None:
        if spec.current.uri or facts.prediction_log_configured:
            return None
        return Verdict(
            ready=False,
            reason=Reason.OBJECT_STORE_NOT_CONFIGURED,
            message=(
                "spec.current.window reads the serving pods' prediction log, but the operator"
                " has no MAESTRO_PREDICTION_LOG_URI (s3:// prefix) to ship and read it; set"
                " it, or give spec.current.uri."
            ),
            phase=DriftPhase.PENDING.value,
        )

    verdict = first_failure(
        [
            deployment_missing(spec.deployment, facts.deployments, "spec.deployment"),
            training_run_missing(
                spec.reference.training_run, facts.training_runs, "spec.reference.trainingRun"
            ),
            training_run_missing(
                retrain.template if retrain else None,
                facts.training_runs,
                "spec.onDrift.retrain.template",
            ),
            reference_missing,
            no_object_store,
        ],
        _ACCEPTED,
    )
    return None if verdict is _ACCEPTED else verdict


_ACCEPTED = Verdict(ready=True, reason=Reason.ACCEPTED, message="", phase="")


def decide(inputs: Inputs) -> Outcome:
    spec, status = inputs.spec, inputs.status
    if inputs.schedule_error:
        return Outcome(
            Verdict(
                ready=False,
                reason=Reason.SCHEDULE_REJECTED,
                message=(
                    f"the API server refused CronJob {inputs.cron_job} for spec.schedule"
                    f" {spec.schedule!r}: {inputs.schedule_error}. Fix spec.schedule."
                ),
                phase=DriftPhase.FAILED.value,
            )
        )
    outcome = Outcome(
        _idle_verdict(inputs),
        {
            "referenceUri": inputs.reference_uri,
            "cronJobRef": {"apiVersion": "batch/v1", "kind": "CronJob", "name": inputs.cron_job},
        },
    )
    run = inputs.last_run
    if run is not None and run.job != status.last_job:
        _report_run(inputs, run, outcome)
    return outcome


def _idle_verdict(inputs: Inputs) -> Verdict:
    """Ready from the last run reported (none yet: scheduled)."""
    spec, status = inputs.spec, inputs.status
    phase = (DriftPhase.SUSPENDED if spec.suspend else DriftPhase.ACTIVE).value
    if status.last_run_reason is None:
        reason = Reason.SUSPENDED if spec.suspend else Reason.SCHEDULED
        return Verdict(
            ready=True,
            reason=reason,
            message=(
                f"CronJob {inputs.cron_job} runs the check on {spec.schedule!r}"
                f"{' (suspended)' if spec.suspend else ''}; run one now with: kubectl"
                f" create job --from=cronjob/{inputs.cron_job} <job name>"
            ),
            phase=phase,
        )
    failed = status.last_run_reason not in (Reason.NO_DRIFT.value, Reason.DRIFT_DETECTED.value)
    try:
        reason = Reason(status.last_run_reason)
    except ValueError:
        reason = Reason.CHECK_RUN_FAILED
    return Verdict(
        ready=not failed, reason=reason, message=status.last_run_message or "", phase=phase
    )


def _report_run(inputs: Inputs, run: FinishedRun, outcome: Outcome) -> None:
    result = run.outcome
    out = outcome.status
    out.update({"lastJob": run.job, "lastRunTime": run.finished_at.isoformat()})
    if isinstance(result, DriftResult) and run.succeeded:
        severity = Severity(result.severity.value)
        drifted = result.drifted_columns
        reason = Reason.NO_DRIFT if not drifted else Reason.DRIFT_DETECTED
        message = (
            f"Job {run.job}: {len(drifted)} of {len(result.columns)} columns drifted"
            f" (share {result.drift_share:.2f}, {severity.value})"
            + (f": {', '.join(drifted)}" if drifted else "")
        )
        out.update(
            {
                "driftShare": result.drift_share,
                "severity": severity.value,
                "driftedColumns": drifted,
                "columns": [
                    {
                        "name": c.name,
                        "test": c.test,
                        "score": c.score,
                        "threshold": c.threshold,
                        "drifted": c.drifted,
                    }
                    for c in result.columns
                ],
                "columnsTruncated": run.truncated or None,
                "reportUri": result.report_uri,
                "mlflowRunId": result.mlflow_run_id,
                "lastRunReason": reason.value,
                "lastRunMessage": message,
            }
        )
        kind = "Normal" if severity == Severity.OK else "Warning"
        outcome.events.append((kind, reason, message))
        outcome.verdict = Verdict(True, reason, message, outcome.verdict.phase)
        _maybe_retrain(inputs, run.job, severity, outcome)
        return
    if isinstance(result, DriftFailure):
        reason = RUN_FAILURES.get(result.reason, Reason.CHECK_RUN_FAILED)
        message = f"Job {run.job} could not check: {result.reason}: {result.message}"
    else:
        reason = Reason.CHECK_RUN_FAILED
        message = f"Job {run.job} failed: {run.message or 'no message from the run'}"
    # The figures of an older run must not stand beside this run's time.
    out.update(dict.fromkeys(RUN_FIGURES))
    out.update({"lastRunReason": reason.value, "lastRunMessage": message[:1000]})
    outcome.events.append(("Warning", reason, message[:1000]))
    outcome.verdict = Verdict(False, reason, message[:1000], outcome.verdict.phase)


def _maybe_retrain(inputs: Inputs, job: str, severity: Severity, outcome: Outcome) -> None:
    retrain = inputs.spec.on_drift.retrain if inputs.spec.on_drift else None
    if retrain is None or SEVERITY_ORDER[severity] < SEVERITY_ORDER[retrain.min_severity]:
        return
    if inputs.retrain.open_runs:
        outcome.events.append(
            (
                "Normal",
                Reason.RETRAIN_SKIPPED,
                f"{severity.value} drift, but retrain {inputs.retrain.open_runs[0]} has not"
                " ended yet (one at a time)",
            )
        )
        return
    started = [t for t in (inputs.status.last_retrain_time, inputs.retrain.last_created) if t]
    last = max(started) if started else None
    cooldown = parse_duration(retrain.cooldown)
    if last is not None and inputs.now < last + cooldown:
        outcome.events.append(
            (
                "Normal",
                Reason.RETRAIN_SKIPPED,
                f"{severity.value} drift, but the last retrain started at {last.isoformat()}"
                f" and spec.onDrift.retrain.cooldown is {retrain.cooldown}",
            )
        )
        return
    if inputs.retrain.template_spec is None:
        return  # preconditions report the missing template
    outcome.retrain_for = (job, severity.value)
