"""The ModelDeployment render cases shared by the tiers: the unit tests compare their output
with tests/golden/modeldeployment/, tests/cluster dry-runs it against a real API server,
tests/manifests checks its alert rules with promtool."""

from __future__ import annotations

from typing import Any

from maestro.operators.api.modeldeployment import ModelDeploymentSpec
from maestro.operators.modeldeployment.decide import Mirror, Revision, RevisionPlan, Role
from maestro.operators.modeldeployment.render import (
    DeploymentIds,
    ServingSettings,
    TraceContexts,
    render,
)

IDS = DeploymentIds(namespace="ml", name="iris", uid="5f0c2a9e-1b3d-4e5f-8a7b-9c0d1e2f3a4b")
SETTINGS = ServingSettings(
    tracking_uri="http://mlflow.mlops:5000",
    image="ghcr.io/maestro-ml/maestro:0.1.0",
    pod_labels={"maestro.dev/local-run": "true"},
)
PLAIN = ServingSettings(
    tracking_uri="http://mlflow.mlops:5000",
    image="ghcr.io/maestro-ml/maestro:0.1.0",
    istio=False,
    prometheus_operator=False,
)
V3, V4 = "models:/iris/3", "models:/iris/4"


def rev(name: str, uri: str, role: Role, replicas: int, shadow: str | None = None) -> Revision:
    return Revision(name, uri, role, replicas, max(replicas, 4), shadow)


STABLE = rev("v3", V3, Role.STABLE, 1)
HELD = rev("v3", V3, Role.STABLE, 4)
PLANS = {
    "steady": RevisionPlan((STABLE,), {"v3": 100}),
    "canary": RevisionPlan((HELD, rev("v4", V4, Role.CANARY, 1)), {"v3": 90, "v4": 10}),
    "blue-green": RevisionPlan((HELD, rev("v4", V4, Role.PREVIEW, 4)), {"v3": 100}),
    "shadow": RevisionPlan(
        (STABLE, rev("v4", V3, Role.SHADOW, 1, shadow=V4)), {"v3": 100}, Mirror("v4", 10)
    ),
}
SECRETS = [
    {"vaultPath": "secret/data/maestro/iris", "key": "feature-store-token", "env": "FS_TOKEN"},
    {"vaultPath": "secret/data/maestro/db", "key": "password", "env": "DB_PASSWORD"},
]
CASES: dict[str, tuple[dict[str, Any], str, ServingSettings]] = {
    "rolling": (
        {
            "model": {"uri": "models:/iris@champion"},
            "slo": {
                "availability": 99.5,
                "latency": {"thresholdMs": 100, "percent": 95},
                "minRequests": 50,
            },
        },
        "steady",
        SETTINGS,
    ),
    "canary": (
        {
            "model": {"uri": "models:/iris@champion", "name": "iris-classifier"},
            "strategy": {
                "type": "Canary",
                "canary": {"analysis": {"maxErrorRate": 0.02, "maxLatencyP95Ms": 300}},
            },
            "replicas": {"min": 2, "max": 4},
            "autoscaling": {
                "targetCPUUtilization": 60,
                "targetMemoryUtilization": 80,
                "targetRequestsPerSecond": 50,
            },
            "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"memory": "2Gi"},
            },
            "secrets": SECRETS,
            "callers": [{"namespace": "ml", "serviceAccount": "web"}, {"namespace": "batch"}],
        },
        "canary",
        ServingSettings(
            tracking_uri="https://mlflow.example.com",
            image="ghcr.io/maestro-ml/maestro:0.1.0",
            service_account="iris-serving",
            egress_ports=(443,),
            prediction_log_dir="/var/log/maestro/predictions",
            prediction_log_claim="prediction-logs",
            prediction_log_sample=0.25,
            otlp_endpoint="http://jaeger-collector.observability:4318",
        ),
    ),
    "blue-green-plain": (
        {
            "model": {"uri": "models:/iris/4"},
            "image": "registry.example/serving:1.2",
            "port": 9000,
            "strategy": {"type": "BlueGreen", "blueGreen": {"autoPromote": False}},
            "autoscaling": {"enabled": False},
        },
        "blue-green",
        PLAIN,
    ),
    "shadow": (
        {
            "model": {"uri": "models:/iris@challenger"},
            "strategy": {"type": "Shadow"},
            "slo": {"latency": {"thresholdMs": 250, "percent": 99.9}},
        },
        "shadow",
        SETTINGS,
    ),
}


# The trace contexts of the canary case: v3 was created by an earlier, traced reconcile; the
# reconcile rendering now creates v4.
TRACES = {
    "canary": TraceContexts(
        live={"v3": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
        current="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
}


def rendered(case: str) -> list[dict[str, Any]]:
    spec_fields, plan, settings = CASES[case]
    spec = ModelDeploymentSpec.model_validate(spec_fields)
    return render(IDS, spec, PLANS[plan], settings, traces=TRACES.get(case))
