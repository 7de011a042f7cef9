"""Maestro's alert rules as code, pure: Prometheus rule dicts built from the metric names of
maestro.monitoring.metric_names, the only place those names come from.

Three sets:

- `serving_alerts`: per ModelDeployment (its operator renders them into the deployment's
  PrometheusRule, with the canary analysis gates as limits): errors, latency, no model
  loaded, overload (503 from a full queue) and saturation (the queue filling up).
- `drift_alerts`: per DriftCheck (in the check's PrometheusRule, at its thresholds).
- `platform_groups` (in platform_alerts): one set for the whole platform, on what the
  operator exports about itself and about the objects it reconciles: reconcile errors and
  latency, work-queue depth, API write rate; failed, queued and stuck TrainingRuns;
  DriftChecks that miss their schedule or cannot check; ABTests stopped by a guardrail or
  with a broken split.

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
