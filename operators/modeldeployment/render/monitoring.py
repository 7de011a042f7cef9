"""Prometheus Operator objects: the ServiceMonitor and the PrometheusRule (the serving alerts,
whose limits are the canary analysis gates, and the SLO rules of spec.slo). Pure."""

from __future__ import annotations

from maestro.monitoring.alerts import ServingLimits, serving_alerts
from maestro.monitoring.slo import LatencyObjective, Objectives, slo_group
from maestro.operators.api.modeldeployment import (
    CanaryAnalysis,
    ModelDeploymentSpec,
    ServiceLevelObjective,
)
from maestro.operators.modeldeployment.render.names import (
    LABEL_REVISION,
    METRICS_PATH,
    PORT_NAME,
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


def alert_rules(ids: DeploymentIds, analysis: CanaryAnalysis, runbooks: str) -> list[Manifest]:
    """Alerts on every revision of the ModelDeployment, with the canary gates as limits
    (the rules themselves are maestro.monitoring.alerts')."""
    limits = ServingLimits(
        max_error_rate=analysis.max_error_rate, max_latency_p95_ms=analysis.max_latency_p95_ms
    )
    return serving_alerts(ids.namespace, ids.name, limits, runbooks)


def objectives(slo: ServiceLevelObjective) -> Objectives:
    latency = slo.latency
    return Objectives(
        availability=slo.availability,
        latency=(
            LatencyObjective(latency.threshold_ms / 1000, latency.percent) if latency else None
        ),
        min_requests=slo.min_requests,
    )


def render_prometheus_rule(
    ids: DeploymentIds, spec: ModelDeploymentSpec, settings: ServingSettings
) -> Manifest:
    analysis = spec.strategy.canary.analysis if spec.strategy.canary else CanaryAnalysis()
    runbooks = settings.runbook_base_url
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _metadata(ids, base_name(ids.name)),
        "spec": {
            "groups": [
                {
                    "name": f"maestro-serving.{ids.namespace}.{ids.name}",
                    "rules": alert_rules(ids, analysis, settings.runbook_base_url),
                },
                *(
                    [slo_group(ids.namespace, ids.name, objectives(spec.slo), runbooks)]
                    if spec.slo
                    else []
                ),
            ]
        },
    }
