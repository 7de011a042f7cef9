"""The gauges the operator exports from the status of the objects it reconciles, which the
platform's training, A/B and drift alerts read: set from a stored status, replaced by the
next one, gone with the object."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from maestro.operators.abtest.metrics import ABTestStatusMetrics
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
