"""ModelDeployment -> the Kubernetes objects that serve it. Pure: no kopf, no kubernetes, no I/O.

`render(ids, spec, plan, settings)` is a function of the typed spec, the revision plan that
maestro.operators.modeldeployment_decisions chose and explicit serving settings, so the
same inputs always give the same manifests; tests/golden/modeldeployment/ holds one file per
shape. Every object carries the ModelDeployment's labels and its controller ownerReference
(the owner is an argument, as for TrainingRuns), so deleting the ModelDeployment deletes
them all; objects of revisions the plan no longer names are for the handler to delete
(`stale`), found through `selector`.

Per revision (`<md>-<revision>`): a Deployment running `maestro serve`, a Service for direct
addressing and Istio subsets, an HPA (autoscaling/v2) unless autoscaling is off, and a
PodDisruptionBudget. Per ModelDeployment (`<md>`): the Service clients use, a NetworkPolicy
and, when enabled, a ServiceMonitor and PrometheusRule (Prometheus Operator) and a
DestinationRule and VirtualService (Istio).

Traffic: with Istio the `<md>` Service selects every revision and the VirtualService splits
and mirrors by subset. Without Istio it selects the one revision with traffic, or every
revision while a canary runs, whose traffic then follows the replica counts (the canary's
replicas follow its weight); shadow mirroring needs Istio.

Secrets: each spec.secrets entry is rendered by the Vault Agent injector's init container to
/vault/secrets/<env> as `export <env>='<value>'`, and the server's command sources those files
before it starts, so the values reach the process environment and never the pod spec.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from maestro.operators.api.common import API_VERSION
from maestro.operators.api.modeldeployment import (
    CanaryAnalysis,
    ModelDeployment,
    ModelDeploymentSpec,
    SecretRef,
)
from maestro.operators.modeldeployment_decisions import Revision, RevisionPlan
from maestro.operators.settings import OperatorConfig

Manifest = dict[str, Any]

APP_NAME = "maestro-serving"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_DEPLOYMENT = "mlops.maestro.dev/deployment"
LABEL_REVISION = "mlops.maestro.dev/revision"
# On Deployments and Services only, never on pods: a promotion must not restart them.
LABEL_ROLE = "mlops.maestro.dev/role"
MANAGED_BY = {"app.kubernetes.io/managed-by": "maestro-operator"}
COMPONENT = {"app.kubernetes.io/component": "model-server"}
SERVER_UID = 10001
SERVICE_PORT = 80
PORT_NAME = "http"
CONTAINER = "server"
COMMAND = ("maestro", "serve")
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
METRICS_PATH = "/metrics"
REQUESTS_PER_SECOND_METRIC = "maestro_requests_per_second"
# Without requests the HPA cannot compute utilisation; used when spec.resources is unset.
DEFAULT_REQUESTS = {"cpu": "250m", "memory": "512Mi"}
# Time for endpoints to drop the pod before SIGTERM starts the server's drain.
PRESTOP_SLEEP_SECONDS = 5
TERMINATION_GRACE_SECONDS = 30
VAULT = "vault.hashicorp.com"
VAULT_SECRETS_DIR = "/vault/secrets"
VAULT_TOKEN_VOLUME = "vault-token"
ALERT_WINDOW = "5m"
SERVER_ERRORS = 'code=~"5.."'
ALERT_FOR = "5m"
ISTIOD_XDS_PORT = 15012
# Longest base name, so `<base>-<revision>` (revision <= 15) stays a 63-character DNS label.
_MAX_BASE = 47


@dataclass(frozen=True)
class OwnedKind:
    """A kind of object the renderer produces, with its REST plural."""

    api_version: str
    kind: str
    plural: str


# In apply order: the routing objects last, once the subsets they name have endpoints.
OWNED_KINDS = (
    OwnedKind("v1", "Service", "services"),
    OwnedKind("apps/v1", "Deployment", "deployments"),
    OwnedKind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    OwnedKind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    OwnedKind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    OwnedKind("networking.istio.io/v1", "DestinationRule", "destinationrules"),
    OwnedKind("networking.istio.io/v1", "VirtualService", "virtualservices"),
    OwnedKind("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
    OwnedKind("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules"),
)


def owned_kinds(settings: ServingSettings) -> tuple[OwnedKind, ...]:
    """The kinds `render` may produce with these settings (to list them for pruning)."""
    skipped = set()
    if not settings.istio:
        skipped.add("networking.istio.io")
    if not settings.prometheus_operator:
        skipped.add("monitoring.coreos.com")
    return tuple(k for k in OWNED_KINDS if k.api_version.rpartition("/")[0] not in skipped)


@dataclass(frozen=True)
class ServingSettings:
    """The operator settings that shape serving workloads."""

    tracking_uri: str
    image: str
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    service_account: str | None = None
    egress_ports: tuple[int, ...] = ()
    prediction_log_dir: str | None = None
    prediction_log_claim: str | None = None
    prediction_log_sample: float = 0.1
    istio: bool = True
    istio_namespace: str = "istio-system"
    prometheus_operator: bool = True
    monitoring_namespace: str = "monitoring"
    runbook_base_url: str = "https://github.com/maestro-ml/maestro/blob/main/docs/runbooks"
    vault_role: str = "maestro-serving"
    vault_port: int = 8200
    cluster_domain: str = "cluster.local"

    @classmethod
    def from_config(cls, config: OperatorConfig) -> ServingSettings:
        return cls(
            tracking_uri=config.mlflow_tracking_uri or "",
            image=config.serving_image,
            pod_labels=dict(config.serving_pod_labels),
            pod_annotations=dict(config.serving_pod_annotations),
            service_account=config.serving_service_account,
            egress_ports=tuple(config.serving_egress_ports),
            prediction_log_dir=config.prediction_log_dir,
            prediction_log_claim=config.prediction_log_claim,
            prediction_log_sample=config.prediction_log_sample,
            istio=config.istio,
            istio_namespace=config.istio_namespace,
            prometheus_operator=config.prometheus_operator,
            monitoring_namespace=config.monitoring_namespace,
            runbook_base_url=config.runbook_base_url,
            vault_role=config.vault_role,
            vault_port=config.vault_port,
            cluster_domain=config.cluster_domain,
        )


@dataclass(frozen=True)
class DeploymentIds:
    """Identity of one ModelDeployment."""

    namespace: str
    name: str
    uid: str


# --- names and labels ---------------------------------------------------------------------


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def base_name(name: str) -> str:
    """The `<md>` of object names: the ModelDeployment name when it is a DNS label of at
    most 47 characters, else a cut of it made one plus a piece of its hash."""
    if len(name) <= _MAX_BASE and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name):
        return name
    label = re.sub(r"[^a-z0-9-]", "-", name.lower())
    if not label[:1].isalpha():
        label = f"md-{label}"
    return f"{label[: _MAX_BASE - 9].rstrip('-')}-{_digest(name)}"


def object_name(name: str, revision: str) -> str:
    return f"{base_name(name)}-{revision}"


def label_value(name: str) -> str:
    """A label value naming the ModelDeployment (names may exceed the 63 a label allows)."""
    if len(name) <= 63:
        return name
    return f"{name[:54].rstrip('-.')}-{_digest(name)}"


def labels(ids: DeploymentIds) -> dict[str, str]:
    return {
        **MANAGED_BY,
        **COMPONENT,
        LABEL_NAME: APP_NAME,
        LABEL_INSTANCE: label_value(ids.name),
        LABEL_DEPLOYMENT: label_value(ids.name),
    }


def pods_selector(ids: DeploymentIds) -> dict[str, str]:
    """Every serving pod of the ModelDeployment, whatever the revision."""
    return {LABEL_NAME: APP_NAME, LABEL_INSTANCE: label_value(ids.name)}


def revision_selector(ids: DeploymentIds, revision: str) -> dict[str, str]:
    return {**pods_selector(ids), LABEL_REVISION: revision}


def selector(ids: DeploymentIds) -> str:
    """Label selector of every object rendered for the ModelDeployment (for pruning)."""
    return f"{LABEL_DEPLOYMENT}={label_value(ids.name)}"


def service_host(ids: DeploymentIds, settings: ServingSettings) -> str:
    return f"{base_name(ids.name)}.{ids.namespace}.svc.{settings.cluster_domain}"


def service_url(ids: DeploymentIds, settings: ServingSettings) -> str:
    """status.url: where in-cluster clients reach the model (port 80)."""
    return f"http://{service_host(ids, settings)}"


def served_name(ids: DeploymentIds, spec: ModelDeploymentSpec) -> str:
    return spec.model.name or ids.name


def owner_reference(ids: DeploymentIds) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": ModelDeployment.INFO.kind,
        "name": ids.name,
        "uid": ids.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(
    ids: DeploymentIds, name: str, extra_labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": ids.namespace,
        "labels": {**labels(ids), **(extra_labels or {})},
        "ownerReferences": [owner_reference(ids)],
    }


def _revision_labels(revision: Revision) -> dict[str, str]:
    return {LABEL_REVISION: revision.name, LABEL_ROLE: revision.role.value}


def prediction_log_path(directory: str, ids: DeploymentIds, revision: str) -> str:
    """Where each pod writes its prediction log; $(POD_NAME) is expanded by the kubelet."""
    return f"{directory.rstrip('/')}/{ids.namespace}/{ids.name}/{revision}/$(POD_NAME).jsonl"


# --- the Deployment -----------------------------------------------------------------------


def _value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def server_env(
    ids: DeploymentIds, spec: ModelDeploymentSpec, revision: Revision, settings: ServingSettings
) -> list[dict[str, Any]]:
    """The shared serving contract's environment (the same values as the args)."""
    env = [
        _value("MLFLOW_TRACKING_URI", settings.tracking_uri),
        _value("MAESTRO_DEPLOYMENT", ids.name),
        _value("MAESTRO_REVISION", revision.name),
        _value("MAESTRO_MODEL_VERSION", revision.model_version),
        _value("MAESTRO_SERVE_MODEL_URI", revision.model_uri),
        _value("MAESTRO_SERVE_MODEL_NAME", served_name(ids, spec)),
        _value("MAESTRO_SERVE_PORT", str(spec.port)),
    ]
    if settings.prediction_log_dir:
        env += [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            _value(
                "MAESTRO_SERVE_PREDICTION_LOG",
                prediction_log_path(settings.prediction_log_dir, ids, revision.name),
            ),
            _value("MAESTRO_SERVE_PREDICTION_LOG_SAMPLE", f"{settings.prediction_log_sample:g}"),
        ]
    env += [
        _value("OTEL_SERVICE_NAME", ids.name),
        _value(
            "OTEL_RESOURCE_ATTRIBUTES",
            f"k8s.namespace.name={ids.namespace},maestro.revision={revision.name}",
        ),
        # The root filesystem is read-only; MLflow downloads models under the home folder.
        _value("HOME", "/tmp"),
    ]
    return env


def server_args(ids: DeploymentIds, spec: ModelDeploymentSpec, revision: Revision) -> list[str]:
    args = [
        "--model-uri",
        revision.model_uri,
        "--model-name",
        served_name(ids, spec),
        "--port",
        str(spec.port),
    ]
    if revision.shadow_model_uri:
        args += ["--shadow-model-uri", revision.shadow_model_uri]
    return args


def _vault_template(secret: SecretRef) -> str:
    # KV v2 keeps the values under .Data.data; single quotes in the value are escaped for the
    # shell that sources the file. json.dumps quotes the key the way Go templates read it.
    return (
        f'{{{{- with secret "{secret.vault_path}" -}}}}\n'
        f"export {secret.env}='{{{{ index .Data.data {json.dumps(secret.key)}"
        " | replaceAll \"'\" \"'\\\\''\" }}'\n"
        "{{- end }}\n"
    )


def vault_annotations(spec: ModelDeploymentSpec, settings: ServingSettings) -> dict[str, str]:
    if not spec.secrets:
        return {}
    annotations = {
        f"{VAULT}/agent-inject": "true",
        f"{VAULT}/role": settings.vault_role,
        # Values are read once at start-up: an init container, no sidecar.
        f"{VAULT}/agent-pre-populate-only": "true",
        # The pod mounts no API token; the agent logs in with this projected one.
        f"{VAULT}/agent-service-account-token-volume-name": VAULT_TOKEN_VOLUME,
    }
    for secret in spec.secrets:
        annotations[f"{VAULT}/agent-inject-secret-{secret.env}"] = secret.vault_path
        annotations[f"{VAULT}/agent-inject-template-{secret.env}"] = _vault_template(secret)
    return annotations


def _command(spec: ModelDeploymentSpec) -> list[str]:
    if not spec.secrets:
        return list(COMMAND)
    sources = " && ".join(f". {VAULT_SECRETS_DIR}/{s.env}" for s in spec.secrets)
    return ["/bin/sh", "-c", f'{sources} && exec {" ".join(COMMAND)} "$@"', COMMAND[0]]


def _resources(spec: ModelDeploymentSpec) -> dict[str, Any]:
    if spec.resources is None:
        return {"requests": dict(DEFAULT_REQUESTS)}
    return spec.resources.model_dump(mode="json", exclude_none=True)


def _security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": SERVER_UID,
        "runAsGroup": SERVER_UID,
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _probe(path: str, period: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def render_deployment(
    ids: DeploymentIds, spec: ModelDeploymentSpec, revision: Revision, settings: ServingSettings
) -> Manifest:
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    if settings.prediction_log_dir:
        mounts.append({"name": "predictions", "mountPath": settings.prediction_log_dir})
        source: dict[str, Any] = (
            {"persistentVolumeClaim": {"claimName": settings.prediction_log_claim}}
            if settings.prediction_log_claim
            else {"emptyDir": {}}
        )
        volumes.append({"name": "predictions", **source})
    if spec.secrets:
        volumes.append(
            {
                "name": VAULT_TOKEN_VOLUME,
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}}
                    ]
                },
            }
        )
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image or settings.image,
        "command": _command(spec),
        "args": server_args(ids, spec, revision),
        "ports": [{"name": PORT_NAME, "containerPort": spec.port, "protocol": "TCP"}],
        "env": server_env(ids, spec, revision, settings),
        "resources": _resources(spec),
        "readinessProbe": _probe(READY_PATH, 5),
        "livenessProbe": _probe(LIVE_PATH, 10),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}},
        "securityContext": _security_context(),
        "volumeMounts": mounts,
    }
    pod_spec: dict[str, Any] = {
        # Servers talk to MLflow, never to the API server.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": SERVER_UID,
            "runAsGroup": SERVER_UID,
            "fsGroup": SERVER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    if settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    annotations = {
        **settings.pod_annotations,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(spec.port),
        "prometheus.io/path": METRICS_PATH,
        **vault_annotations(spec, settings),
    }
    deployment_spec: dict[str, Any] = {
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": revision_selector(ids, revision.name)},
        # A change of the revision's own pod template (resources, image) keeps its capacity.
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
        },
        "template": {
            "metadata": {
                "labels": {
                    **settings.pod_labels,
                    **labels(ids),
                    LABEL_REVISION: revision.name,
                },
                "annotations": annotations,
            },
            "spec": pod_spec,
        },
    }
    if not spec.autoscaling.enabled:
        # With an HPA the replica count is the HPA's: applying one here would fight it.
        deployment_spec = {"replicas": revision.replicas, **deployment_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(
            ids, object_name(ids.name, revision.name), _revision_labels(revision)
        ),
        "spec": deployment_spec,
    }


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
                }
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
        },
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


def render_network_policy(
    ids: DeploymentIds, spec: ModelDeploymentSpec, settings: ServingSettings
) -> Manifest:
    egress: list[dict[str, Any]] = [
        {"ports": [{"protocol": "UDP", "port": 53}, _tcp(53)]},
    ]
    ports = [tracking_port(settings.tracking_uri)]
    if spec.secrets:
        ports.append(settings.vault_port)
    ports += settings.egress_ports
    tcp_ports = sorted({p for p in ports if p is not None})
    if tcp_ports:
        egress.append({"ports": [_tcp(p) for p in tcp_ports]})
    if settings.istio:
        egress.append(
            {"to": [_namespace_peer(settings.istio_namespace)], "ports": [_tcp(ISTIOD_XDS_PORT)]}
        )
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
                        {"podSelector": {}},
                        _namespace_peer(settings.istio_namespace),
                        _namespace_peer(settings.monitoring_namespace),
                    ],
                    "ports": [_tcp(spec.port)],
                }
            ],
            "egress": egress,
        },
    }


def _destination(ids: DeploymentIds, settings: ServingSettings, revision: str) -> dict[str, Any]:
    return {
        "host": service_host(ids, settings),
        "subset": revision,
        "port": {"number": SERVICE_PORT},
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
    route: dict[str, Any] = {
        "name": "model",
        "route": [
            {"destination": _destination(ids, settings, name), "weight": weight}
            for name, weight in plan.weights.items()
        ],
    }
    if plan.mirror is not None:
        route["mirror"] = _destination(ids, settings, plan.mirror.revision)
        route["mirrorPercentage"] = {"value": float(plan.mirror.percent)}
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": _metadata(ids, base_name(ids.name)),
        "spec": {"hosts": [service_host(ids, settings)], "http": [route]},
    }


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
    requests = f"maestro_requests_total{_matchers(ids)}"
    errors = f"maestro_requests_total{_matchers(ids, SERVER_ERRORS)}"
    buckets = f"maestro_request_duration_seconds_bucket{_matchers(ids)}"
    info = f"maestro_model_info{_matchers(ids)}"
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


# --- everything -----------------------------------------------------------------------------


def render(
    ids: DeploymentIds, spec: ModelDeploymentSpec, plan: RevisionPlan, settings: ServingSettings
) -> list[Manifest]:
    """Every object the plan needs, in OWNED_KINDS order; none when it names no revision."""
    if not plan.revisions:
        return []
    objects = [render_service(ids, plan, settings)]
    objects += [render_revision_service(ids, r) for r in plan.revisions]
    objects += [render_deployment(ids, spec, r, settings) for r in plan.revisions]
    if spec.autoscaling.enabled:
        objects += [render_hpa(ids, spec, r) for r in plan.revisions]
    objects += [render_pdb(ids, r) for r in plan.revisions]
    objects.append(render_network_policy(ids, spec, settings))
    if settings.istio:
        objects.append(render_destination_rule(ids, plan, settings))
        objects.append(render_virtual_service(ids, plan, settings))
    if settings.prometheus_operator:
        objects.append(render_service_monitor(ids))
        objects.append(render_prometheus_rule(ids, spec, settings))
    return objects


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    group = str(obj["apiVersion"]).rpartition("/")[0]
    return (group, str(obj["kind"]), str(obj["metadata"]["name"]))


def stale(
    desired: Iterable[Mapping[str, Any]], live: Iterable[Mapping[str, Any]]
) -> list[Manifest]:
    """The live objects (listed by `selector` for each OWNED_KINDS) that `desired` no longer
    has: a removed revision's objects, the HPAs once autoscaling is off, and so on."""
    wanted = {_key(obj) for obj in desired}
    return [dict(obj) for obj in live if _key(obj) not in wanted]
