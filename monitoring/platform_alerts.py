"""The platform's alert rules, one set for the whole platform (see maestro.monitoring.alerts
for the per-object sets and the helpers all of them share): on what the operator exports
about itself and about the objects it reconciles. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from maestro.monitoring import metric_names as names
from maestro.monitoring.alerts import Group, Rule, alert

# --- the platform -------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformLimits:
    """Thresholds of the platform alerts."""

    reconcile_error_ratio: float = 0.1
    reconcile_p99_seconds: float = 5.0
    workqueue_depth: int = 500
    api_writes_per_second: float = 5.0
    queued_for: str = "1h"
    trials_quiet_for: str = "2h"
    srm_for: str = "15m"


def operator_alerts(limits: PlatformLimits, runbooks: str) -> list[Rule]:
    w = "10m"
    errors = names.counter(names.OPERATOR_RECONCILE_ERRORS)
    reconciles = names.count(names.OPERATOR_RECONCILE_SECONDS)
    buckets = names.buckets(names.OPERATOR_RECONCILE_SECONDS)
    writes = names.counter(names.OPERATOR_API_WRITES)
    return [
        alert(
            "MaestroOperatorReconcileErrors",
            f"sum by (kind) (rate({errors}[{w}])) / sum by (kind) (rate({reconciles}[{w}]))"
            f" > {limits.reconcile_error_ratio:g}",
            hold="15m",
            severity="warning",
            summary="Maestro operator: {{ $labels.kind }} reconciles fail",
            description=(
                "{{ $value | humanizePercentage }} of {{ $labels.kind }} reconciles failed"
                f" over {w} and are retried with back-off (limit"
                f" {limits.reconcile_error_ratio:.0%})."
            ),
            runbooks=runbooks,
        ),
        alert(
            "MaestroOperatorReconcileSlow",
            f"histogram_quantile(0.99, sum by (le, kind) (rate({buckets}[{w}])))"
            f" > {limits.reconcile_p99_seconds:g}",
            hold="15m",
            severity="warning",
            summary="Maestro operator: {{ $labels.kind }} reconciles are slow",
            description=(
                "The p99 time of one {{ $labels.kind }} reconcile is"
                f" {{{{ $value | humanizeDuration }}}} over {w}, above"
                f" {limits.reconcile_p99_seconds:g} s."
            ),
            runbooks=runbooks,
        ),
        alert(
            "MaestroOperatorWorkQueueDeep",
            f"sum by (kind) ({names.OPERATOR_WORKQUEUE_DEPTH}) > {limits.workqueue_depth}",
            hold="15m",
            severity="warning",
            summary="Maestro operator: {{ $labels.kind }} work queue is deep",
            description=(
                "{{ $value }} {{ $labels.kind }} objects wait for a re-check or a retry"
                f" (limit {limits.workqueue_depth})."
            ),
            runbooks=runbooks,
        ),
        alert(
            "MaestroOperatorAPIWriteRateHigh",
            f"sum by (kind) (rate({writes}[{w}])) > {limits.api_writes_per_second:g}",
            hold="15m",
            severity="warning",
            summary="Maestro operator: many API writes of {{ $labels.kind }}",
            description=(
                'The operator writes {{ $value | printf "%.2f" }} {{ $labels.kind }} per'
                f" second over {w} (limit {limits.api_writes_per_second:g}/s): a write loop,"
                " or another controller fighting it over the same fields."
            ),
            runbooks=runbooks,
        ),
    ]


def training_alerts(limits: PlatformLimits, runbooks: str) -> list[Rule]:
    phase = names.TRAINING_PHASE
    trials = names.TRAINING_TRIALS
    quiet = limits.trials_quiet_for
    return [
        alert(
            "MaestroTrainingRunFailed",
            f'{phase}{{phase="Failed"}} == 1',
            hold="0s",
            severity="warning",
            summary="TrainingRun {{ $labels.namespace }}/{{ $labels.trainingrun }} failed",
            description=(
                "TrainingRun {{ $labels.namespace }}/{{ $labels.trainingrun }} is Failed;"
                " the alert stays until the run is deleted or run again."
            ),
            runbooks=runbooks,
        ),
        alert(
            "MaestroTrainingRunQueuedTooLong",
            f'{phase}{{phase="Queued"}} == 1',
            hold=limits.queued_for,
            severity="warning",
            summary=(
                "TrainingRun {{ $labels.namespace }}/{{ $labels.trainingrun }} waits in the queue"
            ),
            description=(
                "TrainingRun {{ $labels.namespace }}/{{ $labels.trainingrun }} has been"
                f" Queued for more than {limits.queued_for}: the namespace's concurrency"
                " limit is taken by other runs."
            ),
            runbooks=runbooks,
        ),
        alert(
            "MaestroTrainingTrialsStuck",
            f'{trials}{{state="running"}} > 0 unless on (namespace, trainingrun)'
            f" sum by (namespace, trainingrun)"
            f' (changes({trials}{{state=~"completed|pruned|failed"}}[{quiet}])) > 0',
            hold=quiet,
            severity="warning",
            summary=(
                "TrainingRun {{ $labels.namespace }}/{{ $labels.trainingrun }}: no trial finishes"
            ),
            description=(
                "{{ $value }} trials of TrainingRun {{ $labels.namespace }}/"
                f"{{{{ $labels.trainingrun }}}} are running, and none finished in {quiet}."
            ),
            runbooks=runbooks,
        ),
    ]


def drift_schedule_alerts(runbooks: str) -> list[Rule]:
    last = names.DRIFT_LAST_RUN
    interval = names.DRIFT_SCHEDULE_INTERVAL
    return [
        alert(
            "MaestroDriftCheckNotRun",
            f"time() - {last} > 2 * {interval}",
            hold="10m",
            severity="warning",
            summary="DriftCheck {{ $labels.namespace }}/{{ $labels.driftcheck }} does not run",
            description=(
                "DriftCheck {{ $labels.namespace }}/{{ $labels.driftcheck }} last ran"
                " {{ $value | humanizeDuration }} ago, more than twice the longest wait its"
                " schedule leaves between runs."
            ),
            runbooks=runbooks,
        ),
        alert(
            "MaestroDriftCheckFailing",
            f"{names.DRIFT_LAST_RUN_FAILED} == 1",
            hold="0s",
            severity="warning",
            summary=("DriftCheck {{ $labels.namespace }}/{{ $labels.driftcheck }} cannot check"),
            description=(
                "The last run of DriftCheck {{ $labels.namespace }}/{{ $labels.driftcheck }}"
                " could not check (bad input or a service unreachable): drift of"
                " {{ $labels.deployment }} is not being watched."
            ),
            runbooks=runbooks,
        ),
    ]


def abtest_alerts(limits: PlatformLimits, runbooks: str) -> list[Rule]:
    status = names.ABTEST_STATUS
    return [
        alert(
            "MaestroABTestGuardrailBreached",
            f'{status}{{reason="GuardrailBreached"}} == 1',
            hold="0s",
            severity="warning",
            summary="ABTest {{ $labels.namespace }}/{{ $labels.abtest }}: guardrail breached",
            description=(
                "The challenger of ABTest {{ $labels.namespace }}/{{ $labels.abtest }} on"
                " {{ $labels.deployment }} was clearly worse than the champion on errors or"
                " latency; the test stopped and kept the champion."
            ),
            runbooks=runbooks,
        ),
        alert(
            "MaestroABTestSampleRatioMismatch",
            f'{status}{{reason="SampleRatioMismatch"}} == 1',
            hold=limits.srm_for,
            severity="warning",
            summary=(
                "ABTest {{ $labels.namespace }}/{{ $labels.abtest }}: traffic split is broken"
            ),
            description=(
                "The variants of ABTest {{ $labels.namespace }}/{{ $labels.abtest }} on"
                " {{ $labels.deployment }} received outcomes in a ratio the split cannot"
                f" explain for {limits.srm_for}; no decision is taken while it lasts."
            ),
            runbooks=runbooks,
        ),
    ]


def platform_groups(runbooks: str, limits: PlatformLimits | None = None) -> list[Group]:
    """The platform's rule groups (the Prometheus rule file's `groups`)."""
    limits = limits or PlatformLimits()
    return [
        {"name": "maestro-operator", "rules": operator_alerts(limits, runbooks)},
        {"name": "maestro-training", "rules": training_alerts(limits, runbooks)},
        {"name": "maestro-drift", "rules": drift_schedule_alerts(runbooks)},
        {"name": "maestro-abtest", "rules": abtest_alerts(limits, runbooks)},
    ]
