"""How traffic reaches the revisions: Services, autoscaling, disruption budgets, the
NetworkPolicy and Istio routing. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from maestro.operators.api.modeldeployment import (
    ModelDeploymentSpec,
    ScalingRules,
)
from maestro.operators.core.durations import parse_duration
from maestro.operators.modeldeployment.decide import Revision, RevisionPlan
from maestro.operators.modeldeployment.render.names import (
    GRPC_PORT_NAME,
    GRPC_SERVICE_PORT,
    ISTIOD_XDS_PORT,
    LABEL_REVISION,
    METRICS_PATH,
    PORT_NAME,
    REQUESTS_PER_SECOND_METRIC,
    SERVICE_PORT,
    DeploymentIds,
    Manifest,
    ServingSettings,
    _metadata,
    _revision_labels,
    base_name,
    object_name,
    pods_selector,
    revision_selector,
    service_host,
)

# --- Services, autoscaling, disruption budget -----------------------------------------------


def _service(
    ids: DeploymentIds, name: str, extra: Mapping[str, str], select: Mapping[str, str]
) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(ids, name, extra),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(select),
            "ports": [
                {
                    "name": PORT_NAME,
                    "port": SERVICE_PORT,
                    "targetPort": PORT_NAME,
                    "protocol": "TCP",
                    "appProtocol": "http",
                },
                {
                    "name": GRPC_PORT_NAME,
                    "port": GRPC_SERVICE_PORT,
                    "targetPort": GRPC_PORT_NAME,
                    "protocol": "TCP",
                    "appProtocol": "grpc",
                },
            ],
        },
    }


def render_service(ids: DeploymentIds, plan: RevisionPlan, settings: ServingSettings) -> Manifest:
    """The `<md>` Service clients call."""
    select = pods_selector(ids)
    if not settings.istio and len(plan.weights) == 1:
        (only,) = plan.weights
        select = revision_selector(ids, only)
    return _service(ids, base_name(ids.name), {}, select)


def render_revision_service(ids: DeploymentIds, revision: Revision) -> Manifest:
    return _service(
        ids,
        object_name(ids.name, revision.name),
        _revision_labels(revision),
        revision_selector(ids, revision.name),
    )


def render_hpa(ids: DeploymentIds, spec: ModelDeploymentSpec, revision: Revision) -> Manifest:
    scaling = spec.autoscaling
    metrics: list[dict[str, Any]] = [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {
                    "type": "Utilization",
                    "averageUtilization": scaling.target_cpu_utilization,
                },
            },
        }
    ]
    if scaling.target_memory_utilization is not None:
        metrics.append(
            {
                "type": "Resource",
                "resource": {
                    "name": "memory",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": scaling.target_memory_utilization,
                    },
                },
            }
        )
    if scaling.target_requests_per_second is not None:
        # Served by a custom-metrics adapter (e.g. prometheus-adapter) from maestro_requests_total.
        metrics.append(
            {
                "type": "Pods",
                "pods": {
                    "metric": {"name": REQUESTS_PER_SECOND_METRIC},
                    "target": {
                        "type": "AverageValue",
                        "averageValue": str(scaling.target_requests_per_second),
                    },
                },
            }
        )
    name = object_name(ids.name, revision.name)
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(ids, name, _revision_labels(revision)),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": revision.replicas,
            "maxReplicas": revision.max_replicas,
            "metrics": metrics,
            "behavior": {
                "scaleUp": _scaling_rules(scaling.behavior.scale_up),
                "scaleDown": _scaling_rules(scaling.behavior.scale_down),
            },
        },
    }


def _scaling_rules(rules: ScalingRules) -> dict[str, Any]:
    """One direction of an HPA behavior: the larger of the two limits per period."""
    period = int(parse_duration(rules.period).total_seconds())
    return {
        "stabilizationWindowSeconds": int(
            parse_duration(rules.stabilization_window).total_seconds()
        ),
        "selectPolicy": "Max",
        "policies": [
            {"type": "Percent", "value": rules.max_percent, "periodSeconds": period},
            {"type": "Pods", "value": rules.max_pods, "periodSeconds": period},
        ],
    }


def render_pdb(ids: DeploymentIds, revision: Revision) -> Manifest:
    # maxUnavailable 1 at any size: a drain takes one pod of a revision at a time and a
    # single-replica revision never blocks it (minAvailable 1 would, for ever).
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(
            ids, object_name(ids.name, revision.name), _revision_labels(revision)
        ),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": revision_selector(ids, revision.name)},
            # Crash-looping pods must not hold a node drain hostage.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


# --- network --------------------------------------------------------------------------------


def _namespace_peer(namespace: str) -> dict[str, Any]:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}


def _tcp(port: int) -> dict[str, Any]:
    return {"protocol": "TCP", "port": port}


def tracking_port(uri: str) -> int | None:
    """The TCP port of an http(s) tracking URI, or None for other kinds."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return None
    return parts.port or (443 if parts.scheme == "https" else 80)


def _caller_namespaces(ids: DeploymentIds, spec: ModelDeploymentSpec) -> list[str]:
    return sorted({c.namespace for c in spec.callers}) if spec.callers else [ids.namespace]


def _caller_peers(ids: DeploymentIds, spec: ModelDeploymentSpec) -> list[dict[str, Any]]:
    # The own namespace as a podSelector: it needs no namespace label to match.
    return [
        {"podSelector": {}} if ns == ids.namespace else _namespace_peer(ns)
        for ns in _caller_namespaces(ids, spec)
    ]


def render_peer_authentication(ids: DeploymentIds) -> Manifest:
    """Mutual TLS required: the sidecar refuses plain-text callers, so every request
    carries the caller's identity for the AuthorizationPolicy."""
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": _metadata(ids, base_name(ids.name)),
        "spec": {"selector": {"matchLabels": pods_selector(ids)}, "mtls": {"mode": "STRICT"}},
    }


def _principal(namespace: str, service_account: str, settings: ServingSettings) -> str:
    return f"{settings.trust_domain}/ns/{namespace}/sa/{service_account}"


def render_authorization_policy(
    ids: DeploymentIds, spec: ModelDeploymentSpec, settings: ServingSettings
) -> Manifest:
    """ALLOW only the callers (by mTLS identity) on the model's ports (HTTP and gRPC), and the
    monitoring namespace on GET /metrics; Istio denies everything else to the selected pods."""
    named = sorted(
        _principal(c.namespace, c.service_account, settings)
        for c in spec.callers
        if c.service_account
    )
    whole = sorted({c.namespace for c in spec.callers if not c.service_account})
    if not spec.callers:
        whole = [ids.namespace]
    sources: list[dict[str, Any]] = []
    if named:
        sources.append({"source": {"principals": named}})
    if whole:
        sources.append({"source": {"namespaces": whole}})
    port = str(spec.port)
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": _metadata(ids, base_name(ids.name)),
        "spec": {
            "selector": {"matchLabels": pods_selector(ids)},
            "action": "ALLOW",
            "rules": [
                {
                    "from": sources,
                    "to": [{"operation": {"ports": [port, str(spec.grpc_port)]}}],
                },
                {
                    "from": [{"source": {"namespaces": [settings.monitoring_namespace]}}],
                    "to": [
                        {
                            "operation": {
                                "ports": [port],
                                "methods": ["GET"],
                                "paths": [METRICS_PATH],
                            }
                        }
                    ],
                },
            ],
        },
    }


def render_network_policy(
    ids: DeploymentIds, spec: ModelDeploymentSpec, settings: ServingSettings
) -> Manifest:
    egress: list[dict[str, Any]] = [
        {"ports": [{"protocol": "UDP", "port": 53}, _tcp(53)]},
    ]
    # MLflow, and the OTLP collector the servers' spans go to (same URL rules).
    ports = [tracking_port(settings.tracking_uri)]
    if settings.otlp_endpoint:
        ports.append(tracking_port(settings.otlp_endpoint))
    if spec.secrets:
        ports.append(settings.vault_port)
    if settings.prediction_log_uri and settings.object_store_port:
        ports.append(settings.object_store_port)
    ports += settings.egress_ports
    tcp_ports = sorted({p for p in ports if p is not None})
    if tcp_ports:
        egress.append({"ports": [_tcp(p) for p in tcp_ports]})
    if settings.istio:
        egress.append(
            {"to": [_namespace_peer(settings.istio_namespace)], "ports": [_tcp(ISTIOD_XDS_PORT)]}
        )
    # An ABTest's split: the champion's pods forward the challenger's share to its pods.
    own_pods = {"podSelector": {"matchLabels": pods_selector(ids)}}
    egress.append({"to": [own_pods], "ports": [_tcp(spec.port)]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(ids, base_name(ids.name)),
        "spec": {
            "podSelector": {"matchLabels": pods_selector(ids)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [
                        *_caller_peers(ids, spec),
                        own_pods,
                        _namespace_peer(settings.istio_namespace),
                        _namespace_peer(settings.monitoring_namespace),
                    ],
                    "ports": [_tcp(spec.port), _tcp(spec.grpc_port)],
                }
            ],
            "egress": egress,
        },
    }


def _destination(
    ids: DeploymentIds, settings: ServingSettings, revision: str, port: int
) -> dict[str, Any]:
    return {
        "host": service_host(ids, settings),
        "subset": revision,
        "port": {"number": port},
    }


def render_destination_rule(
    ids: DeploymentIds, plan: RevisionPlan, settings: ServingSettings
) -> Manifest:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": _metadata(ids, base_name(ids.name)),
        "spec": {
            "host": service_host(ids, settings),
            "subsets": [
                {"name": r.name, "labels": {LABEL_REVISION: r.name}} for r in plan.revisions
            ],
        },
    }


def render_virtual_service(
    ids: DeploymentIds, plan: RevisionPlan, settings: ServingSettings
) -> Manifest:
    """One route per Service port, HTTP (`model`) and gRPC (`grpc`), with the same weights
    and mirror: a gRPC call stays on the gRPC port of the revision it is sent to."""

    def route(name: str, port: int) -> dict[str, Any]:
        found: dict[str, Any] = {
            "name": name,
            "match": [{"port": port}],
            "route": [
                {"destination": _destination(ids, settings, revision, port), "weight": weight}
                for revision, weight in plan.weights.items()
            ],
        }
        if plan.mirror is not None:
            found["mirror"] = _destination(ids, settings, plan.mirror.revision, port)
            found["mirrorPercentage"] = {"value": float(plan.mirror.percent)}
        return found

    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": _metadata(ids, base_name(ids.name)),
        "spec": {
            "hosts": [service_host(ids, settings)],
            "http": [route("model", SERVICE_PORT), route("grpc", GRPC_SERVICE_PORT)],
        },
    }
