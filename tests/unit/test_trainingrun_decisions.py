"""TrainingRun lifecycle decisions: spec checks, the namespace queue, job outcomes, trials."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from maestro.operators.api.common import Reason
from maestro.operators.api.trainingrun import Objective, TrainingRunSpec, TrainingRunStatus
from maestro.operators.core.status import plan_status
from maestro.operators.trainingrun.decide import (
    JobState,
    OperatorFacts,
    RunFacts,
    StudyFacts,
    TrialFacts,
    admit,
    check_spec,
    job_failed,
    job_state,
    model_trial,
    no_trial_completed,
    pod_failures,
    running,
    succeeded,
    to_wake,
)

pytestmark = pytest.mark.unit

T0 = datetime(2024, 1, 1, tzinfo=UTC)
CONFIGURED = OperatorFacts(tracking_configured=True, optuna_configured=True, kubeflow=True)
TUNING = {
    "trials": 4,
    "objectives": [{"metric": "accuracy"}],
    "space": {"c": {"type": "float", "low": 0.1, "high": 1.0}},
}


def spec(**fields: Any) -> TrainingRunSpec:
    return TrainingRunSpec.model_validate({"framework": "SKLearn", **fields})


@pytest.mark.parametrize(
    ("fields", "facts", "reason", "phase"),
    [
        pytest.param({}, CONFIGURED, None, None, id="plain-run-starts"),
        pytest.param(
            {},
            OperatorFacts(False, True, True),
            Reason.NOT_CONFIGURED,
            "Pending",
            id="no-mlflow",
        ),
        pytest.param(
            {"tuning": TUNING},
            OperatorFacts(True, False, True),
            Reason.NOT_CONFIGURED,
            "Pending",
            id="tuning-without-storage",
        ),
        pytest.param({}, OperatorFacts(True, False, True), None, None, id="no-storage-no-tuning"),
        pytest.param(
            {"registerAs": {"name": "iris", "alias": "Champion"}},
            CONFIGURED,
            Reason.ALIAS_NOT_ALLOWED,
            "Failed",
            id="champion-is-governance",
        ),
        pytest.param(
            {"framework": "PyTorch", "workers": 2, "tuning": TUNING},
            CONFIGURED,
            Reason.INVALID_SPEC,
            "Failed",
            id="tuning-with-workers",
        ),
        pytest.param(
            {"framework": "PyTorch", "workers": 2},
            OperatorFacts(True, True, False),
            Reason.INVALID_SPEC,
            "Failed",
            id="distributed-without-kubeflow",
        ),
    ],
)
def test_spec_checks(
    fields: dict[str, Any], facts: OperatorFacts, reason: Reason | None, phase: str | None
) -> None:
    verdict = check_spec(spec(**fields), facts)
    if reason is None:
        assert verdict is None
    else:
        assert verdict is not None
        assert (verdict.ready, verdict.reason, verdict.phase) == (False, reason, phase)


def run(name: str, minute: int, phase: str | None = None, started: bool = False) -> RunFacts:
    return RunFacts(name, f"2024-01-01T00:{minute:02d}:00Z", phase, started)


@pytest.mark.parametrize(
    ("me", "others", "starting", "admitted"),
    [
        pytest.param(run("a", 1), [], (), True, id="empty-namespace"),
        pytest.param(
            run("c", 3),
            [run("a", 1, "Running", True), run("b", 2, "Running", True)],
            (),
            False,
            id="limit-reached",
        ),
        pytest.param(
            run("c", 3),
            [run("a", 1, "Succeeded", True), run("b", 2, "Running", True)],
            (),
            True,
            id="finished-runs-free-their-slot",
        ),
        pytest.param(
            run("c", 3, "Queued"),
            [run("a", 1, "Running", True), run("b", 2, "Queued")],
            (),
            False,
            id="older-queued-run-goes-first",
        ),
        pytest.param(
            run("b", 2, "Queued"),
            [run("a", 1, "Running", True), run("c", 3, "Queued")],
            (),
            True,
            id="oldest-queued-run-takes-the-slot",
        ),
        pytest.param(
            run("b", 2),
            [run("a", 1, "Running", True)],
            ("x",),
            False,
            id="runs-being-started-hold-a-slot",
        ),
        pytest.param(
            run("b", 2), [run("a", 1, "Failed")], (), True, id="refused-runs-take-no-slot"
        ),
    ],
)
def test_namespace_queue_with_limit_two(
    me: RunFacts, others: list[RunFacts], starting: tuple[str, ...], admitted: bool
) -> None:
    verdict = admit(me, [me, *others], limit=2, starting=starting)
    if admitted:
        assert verdict is None
    else:
        assert verdict is not None
        assert (verdict.reason, verdict.phase, verdict.ready) == (Reason.QUEUED, "Queued", None)


def test_queued_runs_wake_in_arrival_order_as_many_as_slots_are_free() -> None:
    runs = [run("late", 5, "Queued"), run("a", 1, "Running", True), run("early", 2, "Queued")]
    assert to_wake(runs, limit=4) == ["early", "late"]
    assert to_wake(runs, limit=2) == ["early"]
    assert to_wake(runs, limit=1) == []


def test_runs_not_yet_looked_at_and_finished_ones_are_not_woken() -> None:
    # Unreconciled runs come with their own event; a completion must not wake them all
    # (1,000 runs: about 70,000 reconciles a minute).
    runs = [
        run("new", 3),
        run("pending", 4, "Pending"),
        run("done", 1, "Succeeded", True),
        run("queued", 5, "Queued"),
    ]
    assert to_wake(runs, limit=4) == ["queued"]


def condition(type_: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": "True", "reason": reason, "message": message}


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        pytest.param("Job", {"active": 2}, JobState(active=2), id="job-running"),
        pytest.param(
            "Job",
            {"conditions": [condition("SuccessCriteriaMet"), condition("Complete")]},
            JobState(finished=True, succeeded=True, reason=""),
            id="job-complete",
        ),
        pytest.param(
            "Job",
            {"conditions": [condition("FailureTarget", "BackoffLimitExceeded")]},
            JobState(),
            id="job-failing-but-pods-not-gone",
        ),
        pytest.param(
            "Job",
            {"conditions": [condition("Failed", "DeadlineExceeded", "too long")]},
            JobState(finished=True, reason="DeadlineExceeded", message="too long"),
            id="job-deadline",
        ),
        pytest.param(
            "PyTorchJob",
            {
                "conditions": [condition("Created"), condition("Running")],
                "replicaStatuses": {"Master": {"active": 1}, "Worker": {"active": 2}},
            },
            JobState(active=3),
            id="pytorchjob-running",
        ),
        pytest.param(
            "PyTorchJob",
            {"conditions": [condition("Succeeded", "PyTorchJobSucceeded")]},
            JobState(finished=True, succeeded=True, reason="PyTorchJobSucceeded"),
            id="pytorchjob-succeeded",
        ),
    ],
)
def test_job_state(kind: str, status: dict[str, Any], expected: JobState) -> None:
    assert job_state(kind, {"status": status}) == expected


def failed_pod(name: str, code: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "status": {
            "containerStatuses": [
                {"name": "trainer", "state": {"terminated": {"exitCode": code, "reason": "Error"}}}
            ]
        },
    }


def test_a_failed_job_names_its_reason_and_the_exit_codes() -> None:
    job = JobState(finished=True, reason="BackoffLimitExceeded", message="Job has reached the")
    verdict = job_failed(job, [failed_pod("p-1", 3), failed_pod("p-0", 0)], "Job tr-1")
    assert (verdict.ready, verdict.reason, verdict.phase) == (
        False,
        Reason.BACKOFF_LIMIT_EXCEEDED,
        "Failed",
    )
    assert "pod p-1: container trainer exited with code 3 (Error)" in verdict.message
    assert "p-0" not in verdict.message
    deadline = job_failed(JobState(finished=True, reason="DeadlineExceeded"), [], "Job tr-1")
    assert deadline.reason == Reason.DEADLINE_EXCEEDED
    other = job_failed(JobState(finished=True, reason="PodFailurePolicy"), [], "Job tr-1")
    assert other.reason == Reason.JOB_FAILED


def test_a_failed_job_ends_with_the_error_the_trainer_recorded() -> None:
    job = JobState(
        finished=True,
        reason="PodFailurePolicy",
        message="Container trainer for pod ml/tr-1-0-abc failed with exit code 2",
    )
    error = "Feast feature service 'nope' is not registered in project 'p'"
    verdict = job_failed(job, [failed_pod("tr-1-0-abc", 2)], "Job tr-1", error)
    assert verdict.reason == Reason.JOB_FAILED
    assert verdict.message == (
        "Job tr-1 failed: Container trainer for pod ml/tr-1-0-abc failed with exit code 2."
        " pod tr-1-0-abc: container trainer exited with code 2 (Error)."
        f" Trainer error: {error}"
    )
    assert "Trainer error" not in job_failed(job, [], "Job tr-1", None).message


def test_pod_failures_read_the_last_state_of_restarted_containers() -> None:
    pod = {
        "metadata": {"name": "m-0"},
        "status": {
            "containerStatuses": [
                {
                    "name": "pytorch",
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}},
                }
            ]
        },
    }
    assert pod_failures([pod]) == ["pod m-0: container pytorch exited with code 137 (OOMKilled)"]


def test_the_registered_trial_is_the_best_or_the_front_member_best_on_the_first_objective() -> None:
    best = TrialFacts(3, (0.9,), {"c": 0.5}, "run-3")
    assert model_trial(StudyFacts(completed=4, best=best), [Objective(metric="acc")]) == best
    front = (TrialFacts(1, (0.8, 10.0)), TrialFacts(2, (0.95, 30.0)), TrialFacts(5, (0.95, 5.0)))
    study = StudyFacts(completed=6, pareto=front)
    assert model_trial(study, [Objective(metric="acc")]).number == 2  # type: ignore[union-attr]
    minimize = [Objective.model_validate({"metric": "loss", "direction": "minimize"})]
    assert model_trial(study, minimize).number == 1  # type: ignore[union-attr]
    assert model_trial(StudyFacts(), minimize) is None


def test_a_spent_trial_budget_fails_with_the_counts() -> None:
    verdict = no_trial_completed(StudyFacts(pruned=1, failed=3), trials=4)
    assert (verdict.reason, verdict.phase) == (Reason.TRIAL_BUDGET_SPENT, "Failed")
    assert "1 pruned, 3 failed" in verdict.message


def test_status_moves_from_running_to_succeeded_with_one_transition_each() -> None:
    started = plan_status(
        TrainingRunStatus,
        {},
        running("Job j", JobState(active=1)),
        generation=1,
        clock=lambda: T0,
        extra={"jobRef": {"apiVersion": "batch/v1", "kind": "Job", "name": "j"}},
    )
    assert started.patch["phase"] == "Running"
    assert started.patch["conditions"][0]["status"] == "Unknown"
    assert started.transition is not None
    again = plan_status(
        TrainingRunStatus,
        started.patch,
        running("Job j", JobState(active=1)),
        generation=1,
        clock=lambda: T0,
        extra={"jobRef": {"apiVersion": "batch/v1", "kind": "Job", "name": "j"}},
    )
    assert again.empty, "a reconcile that finds everything right writes nothing"
    done = plan_status(
        TrainingRunStatus,
        started.patch,
        succeeded("registered iris version 1"),
        generation=1,
        clock=lambda: T0,
        extra={"modelVersion": "1", "metrics": {"accuracy": 0.97}},
    )
    assert done.patch["phase"] == "Succeeded"
    assert done.patch["modelVersion"] == "1"
    assert done.transition is not None and done.transition.status == "True"
