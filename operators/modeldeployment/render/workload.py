"""The Deployment of one revision: the `maestro serve` container, its environment (the
serving contract), Vault Agent annotations and the restricted Pod Security settings. Pure."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from maestro.operators.api.modeldeployment import (
    ModelDeploymentSpec,
    SecretRef,
)
from maestro.operators.core import objects
from maestro.operators.core.objects import (
    env_value,
    template_traceparent,
    trace_annotations,
    trace_env,
)
from maestro.operators.modeldeployment.decide import Revision
from maestro.operators.modeldeployment.render.names import (
    COMMAND,
    CONTAINER,
    DEFAULT_REQUESTS,
    DRAIN_SECONDS,
    GRPC_PORT_NAME,
    LABEL_REVISION,
    LIVE_PATH,
    METRICS_PATH,
    PORT_NAME,
    PRESTOP_SLEEP_SECONDS,
    READY_PATH,
    SERVER_UID,
    TERMINATION_GRACE_SECONDS,
    VAULT,
    VAULT_SECRETS_DIR,
    VAULT_TOKEN_VOLUME,
    DeploymentIds,
    Manifest,
    ServingSettings,
    _metadata,
    _revision_labels,
    labels,
    object_name,
    prediction_log_path,
    revision_selector,
    served_name,
    service_account_name,
)
from maestro.security.vault_access import deployment_access
from maestro.serving import contract, predlog_layout

# --- the Deployment -----------------------------------------------------------------------


@dataclass(frozen=True)
class TraceContexts:
    """The trace context each revision's pods carry (TRACEPARENT). A revision keeps the
    context of the reconcile that created its Deployment: every later reconcile, each in a
    trace of its own, renders the same pod template, so tracing never rolls pods out. A
    Deployment created without one (tracing was off) stays without."""

    live: Mapping[str, str | None] = field(default_factory=dict)  # revision -> its pods'
    current: str | None = None  # the running reconcile's, for revisions not created yet

    def of(self, revision: str) -> str | None:
        return self.live.get(revision, self.current)

    @classmethod
    def gather(cls, live: Iterable[Mapping[str, Any]], current: str | None) -> TraceContexts:
        """From the live objects of one ModelDeployment (its Deployments by revision label)."""
        return cls(
            live={
                str(obj["metadata"]["labels"][LABEL_REVISION]): template_traceparent(obj)
                for obj in live
                if obj.get("kind") == "Deployment"
                and LABEL_REVISION in (obj["metadata"].get("labels") or {})
            },
            current=current,
        )


def server_env(
    ids: DeploymentIds,
    spec: ModelDeploymentSpec,
    revision: Revision,
    settings: ServingSettings,
    traceparent: str | None = None,
) -> list[dict[str, Any]]:
    """The shared serving contract's environment (the same values as the args)."""
    env = [
        env_value(contract.TRACKING_URI, settings.tracking_uri),
        env_value(contract.DEPLOYMENT, ids.name),
        env_value(contract.REVISION, revision.name),
        env_value(contract.MODEL_VERSION, revision.model_version),
        env_value(contract.MODEL_URI, revision.model_uri),
        env_value(contract.MODEL_NAME, served_name(ids, spec)),
        env_value(contract.PORT, str(spec.port)),
        env_value(contract.GRPC_PORT, str(spec.grpc_port)),
        env_value(contract.DRAIN_SECONDS, str(DRAIN_SECONDS)),
    ]
    if settings.prediction_log_dir:
        env += [
            {"name": contract.POD_NAME, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            env_value(
                contract.PREDICTION_LOG,
                prediction_log_path(settings.prediction_log_dir, ids, revision.name),
            ),
            env_value(contract.PREDICTION_LOG_SAMPLE, f"{settings.prediction_log_sample:g}"),
        ]
    if settings.prediction_log_uri:
        env += [
            env_value(
                contract.PREDICTION_LOG_URI,
                predlog_layout.deployment_root(
                    settings.prediction_log_uri, ids.namespace, ids.name
                ),
            ),
            env_value(
                contract.PREDICTION_LOG_FLUSH_SECONDS, f"{settings.prediction_log_flush_seconds:g}"
            ),
        ]
        if not settings.prediction_log_dir:
            env += [
                {
                    "name": contract.POD_NAME,
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                },
                env_value(contract.PREDICTION_LOG_SAMPLE, f"{settings.prediction_log_sample:g}"),
            ]
    env += [
        env_value("OTEL_SERVICE_NAME", ids.name),
        env_value(
            "OTEL_RESOURCE_ATTRIBUTES",
            f"k8s.namespace.name={ids.namespace},maestro.revision={revision.name}",
        ),
        *trace_env(traceparent, settings.otlp_endpoint),
        # The root filesystem is read-only; MLflow downloads models under the home folder.
        env_value("HOME", "/tmp"),
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
        "--grpc-port",
        str(spec.grpc_port),
    ]
    if revision.shadow_model_uri:
        args += ["--shadow-model-uri", revision.shadow_model_uri]
    # The server reads each value into its environment before loading the model, and again
    # whenever the Vault Agent sidecar renders a new version.
    for secret in spec.secrets:
        # The injector names the file after the annotation, lower-cased.
        args += ["--secret-file", f"{secret.env}={VAULT_SECRETS_DIR}/{secret.env.lower()}"]
    return args


def _vault_template(secret: SecretRef) -> str:
    # KV v2 keeps the values under .Data.data; the file holds the bare value. json.dumps
    # quotes the path and key the way Go templates read strings.
    return (
        f"{{{{- with secret {json.dumps(secret.vault_path)} -}}}}"
        f"{{{{ index .Data.data {json.dumps(secret.key)} }}}}"
        "{{- end }}"
    )


def vault_annotations(
    ids: DeploymentIds, spec: ModelDeploymentSpec, settings: ServingSettings
) -> dict[str, str]:
    if not spec.secrets:
        return {}
    access = deployment_access(
        ids.namespace, ids.name, service_account_name(ids), [s.vault_path for s in spec.secrets]
    )
    annotations = {
        f"{VAULT}/agent-inject": "true",
        # The deployment's own role: its ServiceAccount reads exactly its own paths.
        f"{VAULT}/role": access.role,
        # The init container renders the files before the server starts; the sidecar
        # renders them again at this interval, so a new KV version reaches running pods.
        f"{VAULT}/agent-init-first": "true",
        f"{VAULT}/template-static-secret-render-interval": settings.vault_render_interval,
        # The pod mounts no API token; the agent logs in with this projected one.
        f"{VAULT}/agent-service-account-token-volume-name": VAULT_TOKEN_VOLUME,
    }
    for secret in spec.secrets:
        annotations[f"{VAULT}/agent-inject-secret-{secret.env}"] = secret.vault_path
        annotations[f"{VAULT}/agent-inject-template-{secret.env}"] = _vault_template(secret)
    return annotations


def render_service_account(ids: DeploymentIds) -> Manifest:
    """The ServiceAccount of a deployment with secrets: the identity its Vault role binds."""
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(ids, service_account_name(ids)),
        # Serving pods never call the API server; the Vault Agent gets a projected token.
        "automountServiceAccountToken": False,
    }


def _resources(spec: ModelDeploymentSpec) -> dict[str, Any]:
    if spec.resources is None:
        return {"requests": dict(DEFAULT_REQUESTS)}
    return spec.resources.model_dump(mode="json", exclude_none=True)


def _probe(path: str, period: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": 3,
    }


def render_deployment(
    ids: DeploymentIds,
    spec: ModelDeploymentSpec,
    revision: Revision,
    settings: ServingSettings,
    traceparent: str | None = None,
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
        "command": list(COMMAND),
        "args": server_args(ids, spec, revision),
        "ports": [
            {"name": PORT_NAME, "containerPort": spec.port, "protocol": "TCP"},
            {"name": GRPC_PORT_NAME, "containerPort": spec.grpc_port, "protocol": "TCP"},
        ],
        "env": server_env(ids, spec, revision, settings, traceparent),
        **objects.env_from_secret(settings.object_store_secret),
        "resources": _resources(spec),
        "readinessProbe": _probe(READY_PATH, 5),
        "livenessProbe": _probe(LIVE_PATH, 10),
        "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SLEEP_SECONDS}}},
        # The server writes why it stopped (a model it cannot load) there; the operator
        # shows it in the ModelDeployment's status. Without it, the log's tail.
        "terminationMessagePath": contract.DEFAULT_TERMINATION_MESSAGE_PATH,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": objects.restricted_container_security_context(SERVER_UID),
        "volumeMounts": mounts,
    }
    pod_spec: dict[str, Any] = {
        # Servers talk to MLflow, never to the API server.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": objects.restricted_pod_security_context(SERVER_UID),
        "containers": [container],
        "volumes": volumes,
    }
    if spec.secrets:
        pod_spec["serviceAccountName"] = service_account_name(ids)
    elif settings.service_account:
        pod_spec["serviceAccountName"] = settings.service_account
    annotations = {
        **settings.pod_annotations,
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(spec.port),
        "prometheus.io/path": METRICS_PATH,
        **vault_annotations(ids, spec, settings),
        **trace_annotations(traceparent),
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
