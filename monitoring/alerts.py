"""Maestro's alert rules as code, pure: Prometheus rule dicts built from the metric names of
maestro.monitoring.metric_names, the only place those names come from.

Three sets:

- `serving_alerts`: per ModelDeployment (its operator renders them into the deployment's
  PrometheusRule, with the canary analysis gates as limits): errors, latency, no model
  loaded, overload (503 from a full queue) and saturation (the queue filling up).
- `drift_alerts`: per DriftCheck (in the check's PrometheusRule, at its thresholds).
- `platform_groups`: one set for the whole platform, on what the operator exports about
  itself and about the objects it reconciles: reconcile errors and latency, work-queue
  depth, API write rate; failed, queued and stuck TrainingRuns; DriftChecks that miss their
  schedule or cannot check; ABTests stopped by a guardrail or with a broken split.

The SLO burn-rate rules of a ModelDeployment are in maestro.monitoring.slo. Every alert
links `<runbooks>/<AlertName>.md` (docs/runbooks/ has one page per alert).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from maestro.monitoring import metric_names as names

Rule = dict[str, Any]
Group = dict[str, Any]

# The window of the serving alerts' rates and how long a condition must hold.
SERVING_WINDOW = "5m"
SERVING_FOR = "5m"
SERVER_ERRORS = 'code=~"5.."'
REJECTED = 'code="503"'  # the queue is full, or the server loads or drains


def alert(
    name: str,
    expr: str,
    *,
    hold: str,
    severity: str,
    summary: str,
    description: str,
    runbooks: str,
    labels: Mapping[str, str] | None = None,
) -> Rule:
    """One alerting rule; `hold` is its `for`. No runbook link when `runbooks` is empty."""
    annotations = {"summary": summary, "description": description}
    if runbooks:
        annotations["runbook_url"] = f"{runbooks.rstrip('/')}/{name}.md"
    return {
        "alert": name,
        "expr": expr,
        "for": hold,
        "labels": {"severity": severity, **(labels or {})},
        "annotations": annotations,
    }


def selector(*more: str, **labels: str) -> str:
    """PromQL label matchers: `labels` equal to their values (quoted as PromQL string
    literals), then the matchers in `more` as written (e.g. 'code=~"5.."')."""
    return "{" + ",".join([*(f"{k}={json.dumps(v)}" for k, v in labels.items()), *more]) + "}"


# --- serving, per ModelDeployment ---------------------------------------------------------


@dataclass(frozen=True)
class ServingLimits:
    """The limits of a ModelDeployment's serving alerts (its canary analysis gates)."""

    max_error_rate: float = 0.01
    max_latency_p95_ms: int = 500
    # Share of the model's bounded queue in use before it counts as saturated.
    max_queue_fill: float = 0.5
    # How long a condition must hold before it fires (the rules' `for`); a test of the
    # alerting path passes a short one rather than wait out production's.
    hold: str = SERVING_FOR


def serving_alerts(
    namespace: str, deployment: str, limits: ServingLimits, runbooks: str
) -> list[Rule]:
    """Alerts on every revision of one ModelDeployment."""
    w = SERVING_WINDOW
    md = {"namespace": namespace, "deployment": deployment}
    sel = selector(**md)
    requests = names.counter(names.REQUESTS)
    errors = f"{requests}{selector(SERVER_ERRORS, **md)}"
    rejected = f"{requests}{selector(REJECTED, **md)}"
    buckets = names.buckets(names.REQUEST_DURATION)
    where = f"{namespace}/{deployment}"
    # With the namespace, as the SLO alerts have it: the same name in two namespaces is two
    # alerts to Alertmanager, not one.
    labels = {"namespace": namespace, "deployment": deployment}
    return [
        alert(
            "MaestroModelErrorRateHigh",
            f"sum by (revision) (rate({errors}[{w}]))"
            f" / sum by (revision) (rate({requests}{sel}[{w}])) > {limits.max_error_rate:g}",
            severity="critical",
            summary=f"Model server {where} answers with 5xx errors",
            description=(
                f"Revision {{{{ $labels.revision }}}} of {where} returned"
                f" {{{{ $value | humanizePercentage }}}} 5xx responses over {w}, above the"
                f" {limits.max_error_rate:.2%} limit."
            ),
            hold=limits.hold,
            runbooks=runbooks,
            labels=labels,
        ),
        alert(
            "MaestroModelLatencyP95High",
            f"histogram_quantile(0.95, sum by (le, revision) (rate({buckets}{sel}[{w}])))"
            f" > {limits.max_latency_p95_ms / 1000:g}",
            severity="warning",
            summary=f"Model server {where} is slow",
            description=(
                f"The p95 latency of revision {{{{ $labels.revision }}}} of {where} is"
                f" {{{{ $value | humanizeDuration }}}} over {w}, above"
                f" {limits.max_latency_p95_ms} ms."
            ),
            hold=limits.hold,
            runbooks=runbooks,
            labels=labels,
        ),
        alert(
            "MaestroModelNotReady",
            f"(sum({names.MODEL_INFO}{sel}) or vector(0)) < 1",
            severity="critical",
            summary=f"No model server of {where} has its model loaded",
            description=(
                f"No serving pod of {where} has reported a loaded model for {limits.hold}:"
                " the model cannot be loaded or no pod is running."
            ),
            hold=limits.hold,
            runbooks=runbooks,
            labels=labels,
        ),
        alert(
            "MaestroModelOverloaded",
            f"sum by (revision) (rate({rejected}[{w}])) > 0",
            severity="warning",
            summary=f"Model server {where} turns requests away (503)",
            description=(
                f"Revision {{{{ $labels.revision }}}} of {where} answered"
                f' {{{{ $value | printf "%.2f" }}}} requests/s with 503 over {w}: its queue is'
                " full, or pods are loading or draining."
            ),
            hold=limits.hold,
            runbooks=runbooks,
            labels=labels,
        ),
        alert(
            "MaestroModelQueueSaturated",
            f"max by (revision) ({names.QUEUE_DEPTH}{sel} / {names.QUEUE_CAPACITY}{sel})"
            f" > {limits.max_queue_fill:g}",
            severity="warning",
            summary=f"Model server {where} is saturated",
            description=(
                f"A pod of revision {{{{ $labels.revision }}}} of {where} has"
                f" {{{{ $value | humanizePercentage }}}} of its request queue in use (limit"
                f" {limits.max_queue_fill:.0%}): latency grows, and a full queue answers 503."
            ),
            hold=limits.hold,
            runbooks=runbooks,
            labels=labels,
        ),
    ]


# --- drift, per DriftCheck ----------------------------------------------------------------


def drift_alerts(
    namespace: str,
    driftcheck: str,
    deployment: str,
    *,
    warning: float,
    critical: float,
    runbooks: str,
) -> list[Rule]:
    """Warning and critical alerts on the drift share of one check's last run."""
    share = f"{names.DRIFT_SHARE}{selector(namespace=namespace, driftcheck=driftcheck)}"

    def drift(severity: str, threshold: float, expr: str) -> Rule:
        return alert(
            f"MaestroDrift{severity}",
            expr,
            hold="0s",
            severity=severity.lower(),
            summary=f"DriftCheck {namespace}/{driftcheck}: {severity.lower()} input drift",
            description=(
                f"{{{{ $value | humanizePercentage }}}} of the columns of {deployment}'s"
                f" inputs drifted in the last check (threshold {threshold:g})."
            ),
            runbooks=runbooks,
            labels={"deployment": deployment},
        )

    return [
        drift("Critical", critical, f"{share} >= {critical:g}"),
        drift("Warning", warning, f"{share} >= {warning:g} and {share} < {critical:g}"),
    ]


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
