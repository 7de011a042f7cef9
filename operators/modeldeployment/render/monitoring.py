"""Prometheus Operator objects: the ServiceMonitor and the alert rules, whose limits are
the canary analysis gates. Pure."""

from __future__ import annotations

import json

from maestro.monitoring import metric_names
from maestro.operators.api.modeldeployment import (
    CanaryAnalysis,
    ModelDeploymentSpec,
)
from maestro.operators.modeldeployment.render.names import (
    ALERT_FOR,
    ALERT_WINDOW,
    LABEL_REVISION,
    METRICS_PATH,
    PORT_NAME,
    SERVER_ERRORS,
    DeploymentIds,
    Manifest,
    ServingSettings,
    _metadata,
    base_name,
    pods_selector,
)

# --- monitoring -----------------------------------------------------------------------------


def render_service_monitor(ids: DeploymentIds) -> Manifest:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _metadata(ids, base_name(ids.name)),
        "spec": {
            # The per-revision Services only: through `<md>` every pod would be scraped twice.
            "selector": {
                "matchLabels": pods_selector(ids),
                "matchExpressions": [{"key": LABEL_REVISION, "operator": "Exists"}],
            },
            "endpoints": [{"port": PORT_NAME, "path": METRICS_PATH, "interval": "15s"}],
        },
    }


def _matchers(ids: DeploymentIds, *extra: str) -> str:
    pairs = [f"namespace={json.dumps(ids.namespace)}", f"deployment={json.dumps(ids.name)}"]
    return "{" + ",".join([*pairs, *extra]) + "}"


def alert_rules(ids: DeploymentIds, analysis: CanaryAnalysis, runbooks: str) -> list[Manifest]:
    """Alerts on every revision of the ModelDeployment, with the canary gates as limits."""
    w = ALERT_WINDOW
    requests = f"{metric_names.counter(metric_names.REQUESTS)}{_matchers(ids)}"
    errors = f"{metric_names.counter(metric_names.REQUESTS)}{_matchers(ids, SERVER_ERRORS)}"
    buckets = f"{metric_names.buckets(metric_names.REQUEST_DURATION)}{_matchers(ids)}"
    info = f"{metric_names.MODEL_INFO}{_matchers(ids)}"
    where = f"{ids.namespace}/{ids.name}"

    def alert(name: str, expr: str, severity: str, summary: str, description: str) -> Manifest:
        return {
            "alert": name,
            "expr": expr,
            "for": ALERT_FOR,
            "labels": {"severity": severity, "deployment": ids.name},
            "annotations": {
                "summary": summary,
                "description": description,
                "runbook_url": f"{runbooks.rstrip('/')}/{name}.md",
            },
        }

    return [
        alert(
            "MaestroModelErrorRateHigh",
            f"sum by (revision) (rate({errors}[{w}]))"
            f" / sum by (revision) (rate({requests}[{w}])) > {analysis.max_error_rate:g}",
            "critical",
            f"Model server {where} answers with 5xx errors",
            f"Revision {{{{ $labels.revision }}}} of {where} returned"
            f" {{{{ $value | humanizePercentage }}}} 5xx responses over {w}, above the"
            f" {analysis.max_error_rate:.2%} limit.",
        ),
        alert(
            "MaestroModelLatencyP95High",
            f"histogram_quantile(0.95, sum by (le, revision) (rate({buckets}[{w}])))"
            f" > {analysis.max_latency_p95_ms / 1000:g}",
            "warning",
            f"Model server {where} is slow",
            f"The p95 latency of revision {{{{ $labels.revision }}}} of {where} is"
            f" {{{{ $value | humanizeDuration }}}} over {w}, above"
            f" {analysis.max_latency_p95_ms} ms.",
        ),
        alert(
            "MaestroModelNotReady",
            f"(sum({info}) or vector(0)) < 1",
            "critical",
            f"No model server of {where} has its model loaded",
            f"No serving pod of {where} has reported a loaded model for {ALERT_FOR}: the"
            " model cannot be loaded or no pod is running.",
        ),
    ]


def render_prometheus_rule(
    ids: DeploymentIds, spec: ModelDeploymentSpec, settings: ServingSettings
) -> Manifest:
    analysis = spec.strategy.canary.analysis if spec.strategy.canary else CanaryAnalysis()
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _metadata(ids, base_name(ids.name)),
        "spec": {
            "groups": [
                {
                    "name": f"maestro-serving.{ids.namespace}.{ids.name}",
                    "rules": alert_rules(ids, analysis, settings.runbook_base_url),
                }
            ]
        },
    }
