"""Names, labels, selectors and settings of the objects a ModelDeployment owns. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maestro.monitoring import metric_names
from maestro.operators.api.modeldeployment import (
    ModelDeployment,
    ModelDeploymentSpec,
)
from maestro.operators.core import objects
from maestro.operators.core.objects import IMAGE_UID, MANAGED_BY, Kind, digest, label_value
from maestro.operators.core.settings import OperatorConfig
from maestro.operators.modeldeployment.decide import Revision

Manifest = dict[str, Any]

APP_NAME = "maestro-serving"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_DEPLOYMENT = "mlops.maestro.dev/deployment"
LABEL_REVISION = "mlops.maestro.dev/revision"
# On Deployments and Services only, never on pods: a promotion must not restart them.
LABEL_ROLE = "mlops.maestro.dev/role"
COMPONENT = {"app.kubernetes.io/component": "model-server"}
SERVER_UID = IMAGE_UID
SERVICE_PORT = 80
PORT_NAME = "http"
# The Open Inference Protocol over gRPC: the container's spec.grpcPort, named so, and the
# Service's port of the same name (a fixed number, as HTTP's 80 is).
GRPC_PORT_NAME = "grpc"
GRPC_SERVICE_PORT = 8081
CONTAINER = "server"
COMMAND = ("maestro", "serve")
READY_PATH = "/v2/health/ready"
LIVE_PATH = "/v2/health/live"
METRICS_PATH = "/metrics"
REQUESTS_PER_SECOND_METRIC = metric_names.REQUESTS_PER_SECOND
# Without requests the HPA cannot compute utilisation; used when spec.resources is unset.
DEFAULT_REQUESTS = {"cpu": "250m", "memory": "512Mi"}
# Time for endpoints to drop the pod before SIGTERM starts the server's drain.
PRESTOP_SLEEP_SECONDS = 5
TERMINATION_GRACE_SECONDS = 30
# The server's drain after SIGTERM must end inside what the preStop sleep leaves of the grace
# period, with a margin, or the kubelet's SIGKILL cuts long requests short.
DRAIN_SECONDS = TERMINATION_GRACE_SECONDS - PRESTOP_SLEEP_SECONDS - 5
VAULT = "vault.hashicorp.com"
VAULT_SECRETS_DIR = "/vault/secrets"
VAULT_TOKEN_VOLUME = "vault-token"
ISTIOD_XDS_PORT = 15012
# Longest base name, so `<base>-<revision>` (revision <= 15) stays a 63-character DNS label.
_MAX_BASE = 47


# A kind of object the renderer produces, with its REST plural.
OwnedKind = Kind


# In apply order: the routing objects last, once the subsets they name have endpoints.
OWNED_KINDS = (
    OwnedKind("v1", "ServiceAccount", "serviceaccounts"),
    OwnedKind("v1", "Service", "services"),
    OwnedKind("apps/v1", "Deployment", "deployments"),
    OwnedKind("autoscaling/v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    OwnedKind("policy/v1", "PodDisruptionBudget", "poddisruptionbudgets"),
    OwnedKind("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies"),
    OwnedKind("networking.istio.io/v1", "DestinationRule", "destinationrules"),
    OwnedKind("networking.istio.io/v1", "VirtualService", "virtualservices"),
    OwnedKind("security.istio.io/v1", "PeerAuthentication", "peerauthentications"),
    OwnedKind("security.istio.io/v1", "AuthorizationPolicy", "authorizationpolicies"),
    OwnedKind("monitoring.coreos.com/v1", "ServiceMonitor", "servicemonitors"),
    OwnedKind("monitoring.coreos.com/v1", "PrometheusRule", "prometheusrules"),
)


def owned_kinds(settings: ServingSettings) -> tuple[OwnedKind, ...]:
    """The kinds `render` may produce with these settings (to list them for pruning)."""
    skipped = set()
    if not settings.istio:
        skipped |= {"networking.istio.io", "security.istio.io"}
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
    prediction_log_uri: str | None = None
    prediction_log_flush_seconds: float = 30.0
    object_store_secret: str | None = None
    object_store_port: int | None = None
    istio: bool = True
    istio_namespace: str = "istio-system"
    trust_domain: str = "cluster.local"
    prometheus_operator: bool = True
    monitoring_namespace: str = "monitoring"
    runbook_base_url: str = "https://github.com/maestro-ml/maestro/blob/main/docs/runbooks"
    vault_render_interval: str = "1m"
    vault_port: int = 8200
    cluster_domain: str = "cluster.local"
    # OTLP/HTTP collector the servers export spans to (the operator's own); None: no spans.
    otlp_endpoint: str | None = None

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
            prediction_log_uri=config.prediction_log_uri,
            prediction_log_flush_seconds=config.prediction_log_flush_seconds,
            object_store_secret=config.object_store_secret,
            object_store_port=config.object_store_port,
            istio=config.istio,
            istio_namespace=config.istio_namespace,
            trust_domain=config.istio_trust_domain,
            prometheus_operator=config.prometheus_operator,
            monitoring_namespace=config.monitoring_namespace,
            runbook_base_url=config.runbook_base_url,
            vault_render_interval=config.vault.render_interval,
            vault_port=config.vault_port,
            cluster_domain=config.cluster_domain,
            otlp_endpoint=config.otlp_endpoint,
        )


@dataclass(frozen=True)
class DeploymentIds:
    """Identity of one ModelDeployment."""

    namespace: str
    name: str
    uid: str


# --- names and labels ---------------------------------------------------------------------


def base_name(name: str) -> str:
    """The `<md>` of object names: the ModelDeployment name when it is a DNS label of at
    most 47 characters, else a cut of it made one plus a piece of its hash."""
    if len(name) <= _MAX_BASE and re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name):
        return name
    label = re.sub(r"[^a-z0-9-]", "-", name.lower())
    if not label[:1].isalpha():
        label = f"md-{label}"
    return f"{label[: _MAX_BASE - 9].rstrip('-')}-{digest(name)}"


def object_name(name: str, revision: str) -> str:
    return f"{base_name(name)}-{revision}"


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
    return f"{LABEL_DEPLOYMENT}={owner_label(ids)}"


def owner_label(ids: DeploymentIds) -> str:
    """The value of LABEL_DEPLOYMENT on every object rendered for the ModelDeployment."""
    return label_value(ids.name)


def service_host(ids: DeploymentIds, settings: ServingSettings) -> str:
    return f"{base_name(ids.name)}.{ids.namespace}.svc.{settings.cluster_domain}"


def service_url(ids: DeploymentIds, settings: ServingSettings) -> str:
    """status.url: where in-cluster clients reach the model (port 80)."""
    return f"http://{service_host(ids, settings)}"


def service_account_name(ids: DeploymentIds) -> str:
    """The ServiceAccount of a deployment with spec.secrets (its Vault identity)."""
    return f"{ids.name}-serving"


def served_name(ids: DeploymentIds, spec: ModelDeploymentSpec) -> str:
    return spec.model.name or ids.name


def owner_reference(ids: DeploymentIds) -> dict[str, Any]:
    return objects.owner_reference(ModelDeployment.INFO.kind, ids.name, ids.uid)


def _metadata(
    ids: DeploymentIds, name: str, extra_labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    return objects.metadata(
        name, ids.namespace, {**labels(ids), **(extra_labels or {})}, owner_reference(ids)
    )


def _revision_labels(revision: Revision) -> dict[str, str]:
    return {LABEL_REVISION: revision.name, LABEL_ROLE: revision.role.value}


def prediction_log_path(directory: str, ids: DeploymentIds, revision: str) -> str:
    """Where each pod writes its prediction log; $(POD_NAME) is expanded by the kubelet."""
    return f"{directory.rstrip('/')}/{ids.namespace}/{ids.name}/{revision}/$(POD_NAME).jsonl"
