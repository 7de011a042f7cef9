"""The gauges the operator exports from the status of the objects it reconciles, which the
platform's training, A/B and drift alerts read: set from a stored status, replaced by the
next one, gone with the object."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from maestro.operators.abtest.metrics import ABTestStatusMetrics
from maestro.operators.api.common import Reason
from maestro.operators.core.runtime import Runtime
from maestro.operators.core.verdict import Verdict
from maestro.operators.driftcheck.controller import schedule_interval
from maestro.operators.driftcheck.metrics import DriftMetrics
from maestro.operators.driftcheck.schedule import ScheduleError, longest_gap_seconds
from maestro.operators.trainingrun.metrics import TrainingMetrics

pytestmark = pytest.mark.unit

HOUR = 3600.0
DAY = 24 * HOUR


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == name
    }


def test_trainingrun_phase_is_one_for_the_current_phase_only() -> None:
    registry = CollectorRegistry()
    metrics = TrainingMetrics(registry)
    metrics.show("ns", "run", {"phase": "Queued"})
    get = registry.get_sample_value
    phase = "maestro_trainingrun_phase"
    assert get(phase, {"namespace": "ns", "trainingrun": "run", "phase": "Queued"}) == 1
    assert get(phase, {"namespace": "ns", "trainingrun": "run", "phase": "Failed"}) == 0
    metrics.show("ns", "run", {"phase": "Failed"})
    assert get(phase, {"namespace": "ns", "trainingrun": "run", "phase": "Queued"}) == 0
    assert get(phase, {"namespace": "ns", "trainingrun": "run", "phase": "Failed"}) == 1
    assert sum(samples(registry, phase).values()) == 1
    # Not a tuning run: no trial series.
    assert samples(registry, "maestro_trainingrun_trials") == {}


def test_trainingrun_trials_by_state_and_forgotten_with_the_run() -> None:
    registry = CollectorRegistry()
    metrics = TrainingMetrics(registry)
    trials = {"total": 20, "running": 4, "completed": 9, "pruned": 2, "failed": 1}
    metrics.show("ns", "tune", {"phase": "Running", "trials": trials})
    got = {
        dict(labels)["state"]: v
        for labels, v in samples(registry, "maestro_trainingrun_trials").items()
    }
    assert got == {state: float(n) for state, n in trials.items()}
    metrics.show("ns", "other", {"phase": "Running"})
    metrics.forget("ns", "tune")
    assert samples(registry, "maestro_trainingrun_trials") == {}
    names = {dict(k)["trainingrun"] for k in samples(registry, "maestro_trainingrun_phase")}
    assert names == {"other"}


def test_abtest_status_shows_phase_and_ready_reason_and_srm() -> None:
    registry = CollectorRegistry()
    metrics = ABTestStatusMetrics(registry)
    srm = {
        "phase": "Running",
        "srmPValue": 1e-6,
        "conditions": [{"type": "Ready", "status": "False", "reason": "SampleRatioMismatch"}],
    }
    metrics.show("ns", "t", "iris", srm)
    labels = {"namespace": "ns", "abtest": "t", "deployment": "iris"}
    status = "maestro_abtest_status"
    get = registry.get_sample_value
    assert get(status, {**labels, "phase": "Running", "reason": "SampleRatioMismatch"}) == 1
    assert get("maestro_abtest_srm_p_value", labels) == pytest.approx(1e-6)
    breached = {
        "phase": "Concluded",
        "conditions": [{"type": "Ready", "status": "True", "reason": "GuardrailBreached"}],
    }
    metrics.show("ns", "t", "iris", breached)
    # The earlier reason's series is gone, not left at 1 beside the new one.
    assert samples(registry, status) == {
        tuple(sorted({**labels, "phase": "Concluded", "reason": "GuardrailBreached"}.items())): 1
    }
    assert get("maestro_abtest_srm_p_value", labels) is None
    metrics.forget("ns", "t")
    assert samples(registry, status) == {}


def test_driftcheck_schedule_gauges_and_suspension() -> None:
    registry = CollectorRegistry()
    metrics = DriftMetrics(registry)
    labels = {"namespace": "ns", "driftcheck": "dc", "deployment": "iris"}
    metrics.show_schedule("ns", "dc", "iris", last_run=1000.0, failed=True, interval=HOUR)
    get = registry.get_sample_value
    assert get("maestro_driftcheck_last_run_timestamp_seconds", labels) == 1000.0
    assert get("maestro_driftcheck_last_run_failed", labels) == 1
    assert get("maestro_driftcheck_schedule_interval_seconds", labels) == HOUR
    metrics.show_schedule("ns", "dc", "iris", last_run=2000.0, failed=False, interval=None)
    assert get("maestro_driftcheck_last_run_timestamp_seconds", labels) is None
    assert get("maestro_driftcheck_schedule_interval_seconds", labels) is None
    assert schedule_interval({"schedule": "0 * * * *", "suspend": True}) is None
    assert schedule_interval({"schedule": "*/15 * * * *"}) == 15 * 60
    # The CRD's default schedule when none is given.
    assert schedule_interval({}) == HOUR


@pytest.mark.parametrize(
    ("schedule", "gap"),
    [
        ("0 * * * *", HOUR),
        ("*/5 * * * *", 300.0),
        ("* * * * *", 60.0),
        ("@daily", DAY),
        ("@weekly", 7 * DAY),
        ("15 2,14 * * *", 12 * HOUR),
        ("0 9-17 * * *", 16 * HOUR),  # 17:00 to 09:00 the next day
        ("0 9 * * MON-FRI", 3 * DAY),  # Friday to Monday
        ("0 0 1 * *", 31 * DAY),
        ("0 0 1 JAN,JUL *", 184 * DAY),  # July to January
        ("0 0 13 * 5", 7 * DAY),  # the 13th or a Friday: Fridays are a week apart
        ("0 0 29 2 *", (3 * 365 + 366) * DAY),  # leap days only
    ],
)
def test_longest_gap_of_a_schedule(schedule: str, gap: float) -> None:
    assert longest_gap_seconds(schedule) == gap


@pytest.mark.parametrize("schedule", ["0 * * *", "61 * * * *", "0 0 31 2 *", "*/0 * * * *"])
def test_unreadable_schedules(schedule: str) -> None:
    with pytest.raises(ScheduleError):
        longest_gap_seconds(schedule)


class FakeKube:
    """What a controller's status write and deletion touch: a recorded /status patch."""

    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    def patch_status(self, api_version: str, plural: str, ns: str, name: str, patch: Any) -> None:
        self.patches.append(dict(patch))

    def list_runs(self, namespace: str) -> list[Any]:
        return []


def obj_of(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.maestro.dev/v1alpha1",
        "kind": kind,
        "metadata": {"namespace": "ns", "name": "x", "uid": "u", "generation": 1},
        "spec": spec,
        "status": {},
    }


Posted = list[tuple[str, str, str]]  # (type, reason, message) of each Event


@pytest.fixture
def events() -> Posted:
    return []


@pytest.fixture
def runtime(events: Posted) -> Runtime:
    """Events are recorded here: outside a running operator Kopf has nowhere to post them."""
    return Runtime(
        clock=lambda: datetime(2026, 1, 1, tzinfo=UTC),
        request_timeout=5.0,
        post_event=lambda obj, type_, reason, message: events.append((type_, reason, message)),
    )


def test_a_trainingrun_status_write_sets_its_gauges_and_deletion_drops_them(
    runtime: Runtime, events: Posted
) -> None:
    from maestro.operators.trainingrun.controller import Controller, _Step

    controller = Controller(runtime=runtime, config=runtime.config)
    kube = FakeKube()
    controller._kube = kube  # type: ignore[assignment]
    obj = obj_of("TrainingRun", {})
    _Step(controller, obj).write(
        Verdict(ready=False, reason=Reason.JOB_FAILED, message="boom", phase="Failed"),
        {"trials": {"total": 4, "running": 0, "completed": 3, "pruned": 0, "failed": 1}},
    )
    assert kube.patches and kube.patches[0]["phase"] == "Failed"
    assert events == [("Warning", "JobFailed", "boom")]  # the Ready transition's Event
    get = runtime.metrics.get_sample_value
    run = {"namespace": "ns", "trainingrun": "x"}
    assert get("maestro_trainingrun_phase", {**run, "phase": "Failed"}) == 1
    assert get("maestro_trainingrun_trials", {**run, "state": "completed"}) == 3
    controller.deleted({"metadata": {"namespace": "ns", "name": "x"}, "status": {}})
    assert get("maestro_trainingrun_phase", {**run, "phase": "Failed"}) is None


def test_an_abtest_status_write_sets_its_gauges(runtime: Runtime) -> None:
    from maestro.operators.abtest.controller import Controller, _Step
    from maestro.operators.abtest.decide import Outcome

    controller = Controller(runtime)
    kube = FakeKube()
    runtime._kube = kube  # type: ignore[assignment]
    verdict = Verdict(
        ready=False, reason=Reason.SAMPLE_RATIO_MISMATCH, message="split", phase="Running"
    )
    step = _Step(controller, obj_of("ABTest", {"deployment": "iris"}))
    step.write(Outcome(verdict, {"srmPValue": 1e-5}, requeue_after=None))
    labels = {"namespace": "ns", "abtest": "x", "deployment": "iris"}
    get = runtime.metrics.get_sample_value
    status = {**labels, "phase": "Running", "reason": "SampleRatioMismatch"}
    assert get("maestro_abtest_status", status) == 1
    assert get("maestro_abtest_srm_p_value", labels) == pytest.approx(1e-5)


def test_a_driftcheck_status_write_sets_when_it_ran_and_its_schedule(runtime: Runtime) -> None:
    from maestro.operators.driftcheck.controller import _Step, build
    from maestro.operators.driftcheck.decide import Outcome

    controller = build(runtime, DriftMetrics(runtime.metrics))
    runtime._kube = FakeKube()  # type: ignore[assignment]
    obj = obj_of("DriftCheck", {"deployment": "iris", "schedule": "*/30 * * * *"})
    verdict = Verdict(ready=False, reason=Reason.CHECK_RUN_FAILED, message="no", phase="Active")
    ran = "2026-01-01T00:00:00+00:00"
    _Step(controller, obj).write(
        Outcome(verdict, {"lastRunTime": ran, "lastRunReason": Reason.CHECK_RUN_FAILED.value})
    )
    labels = {"namespace": "ns", "driftcheck": "x", "deployment": "iris"}
    get = runtime.metrics.get_sample_value
    assert get("maestro_driftcheck_last_run_timestamp_seconds", labels) == (
        datetime.fromisoformat(ran).timestamp()
    )
    assert get("maestro_driftcheck_last_run_failed", labels) == 1
    assert get("maestro_driftcheck_schedule_interval_seconds", labels) == 1800
