"""Operator settings: MAESTRO_* environment variables, overridden by command-line flags."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from maestro.security.vault_settings import VaultSettings


class OperatorConfig(BaseSettings):
    """How `maestro operator` runs. Every field can be set as MAESTRO_<FIELD_NAME>."""

    model_config = SettingsConfigDict(
        env_prefix="MAESTRO_", extra="ignore", frozen=True, populate_by_name=True
    )

    namespaces: list[str] = Field(
        default_factory=list,
        description="Namespaces to serve (JSON list in the environment); empty serves all.",
    )
    peering: str = Field(
        default="maestro",
        description="Name of the ClusterKopfPeering object that elects one active replica.",
    )
    standalone: bool = Field(
        default=False, description="Run without peering (single replica, tests, development)."
    )
    priority: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description=(
            "Peering priority of this replica; the highest is active. Unset picks a random"
            " one, because Kopf pauses every replica when the highest priority is shared."
        ),
    )
    liveness: str = Field(
        default="http://0.0.0.0:8080/healthz",
        description="Liveness endpoint URL; empty disables it.",
    )
    watch_server_timeout: int = Field(
        default=60,
        ge=1,
        description="Seconds before the API server ends a watch, so idle watches reconnect.",
    )
    request_timeout: float = Field(
        default=30.0, gt=0, description="Seconds allowed for one API request."
    )
    connect_timeout: float = Field(
        default=10.0, gt=0, description="Seconds allowed to connect to the API server."
    )
    handler_threads: int = Field(
        default=16,
        ge=1,
        description=(
            "Threads running handlers; TrainingRun steps wait on MLflow and Optuna, so one"
            " slow run must not hold up the others."
        ),
    )
    prometheus_url: str | None = Field(
        default=None,
        description=(
            "Base URL of the Prometheus HTTP API that canary and shadow analyses query,"
            " e.g. http://prometheus-operated.monitoring:9090."
        ),
    )
    metrics_listen: str | None = Field(
        default=None,
        pattern=r"^[^:\s]*:[0-9]{1,5}$",
        description=(
            "host:port serving the operator's Prometheus metrics at /metrics (each"
            " DriftCheck's drift share, severity and per-column scores); unset serves none."
        ),
    )
    otlp_endpoint: str | None = Field(
        default=None,
        # The standard OpenTelemetry variable, as every OTLP exporter reads it.
        validation_alias=AliasChoices(
            "otlp_endpoint", "MAESTRO_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
        description=(
            "Base URL of an OTLP/HTTP collector (e.g. http://jaeger-collector.observability"
            ":4318; /v1/traces is appended) that receives a span per reconcile; serving pods"
            " export theirs there too, and the pods a reconcile creates continue its trace"
            " (TRACEPARENT). Unset: no spans (no-op tracing)."
        ),
    )
    log_format: str = Field(default="plain", description="Kopf log format: plain, full or json.")
    verbose: bool = Field(default=False, description="Debug logging.")

    # --- TrainingRun -------------------------------------------------------------------
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description=(
            "MLflow tracking server the operator and the trainer pods use; unset leaves"
            " TrainingRuns Pending with reason OperatorNotConfigured."
        ),
    )
    optuna_storage: SecretStr | None = Field(
        default=None,
        description=(
            "Optuna RDB storage URL (with credentials), e.g."
            " postgresql://user:pw@db/optuna. Fill it from a Secret; the operator"
            " hands it to trainer pods only through a Secret of their own, never inline."
            " Needed by runs with spec.tuning."
        ),
    )
    optuna_secret_key: str = Field(
        default="storage",
        min_length=1,
        description=(
            "Key of the storage URL in the Secret the operator creates for each tuning run"
            " (named <job>-optuna, owned by the TrainingRun)."
        ),
    )
    trainer_image: str = Field(
        default="ghcr.io/maestro-ml/maestro:0.1.0",
        min_length=1,
        description="Image of trainer pods whose TrainingRun names none (spec.image).",
    )
    trainer_pod_labels: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extra labels on every trainer pod (JSON object in the environment), e.g."
            ' {"maestro.dev/local-run": "true"} on the local platform.'
        ),
    )
    trainer_feast: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Feast settings for trainer pods of runs that name a featureService (JSON object"
            " in the environment) with keys repo, registry, redis and project; unset keys"
            " leave the trainer's defaults (the feature repo packaged in the image)."
        ),
    )
    trainer_service_account: str | None = Field(
        default=None,
        description=(
            "ServiceAccount of trainer pods; unset uses the namespace's default. Trainer"
            " pods never get an API token mounted."
        ),
    )
    max_concurrent_runs: int = Field(
        default=4,
        ge=1,
        description="TrainingRuns running at once per namespace; later ones wait as Queued.",
    )
    kubeflow: bool = Field(
        default=True,
        description=(
            "Run PyTorch, TensorFlow and XGBoost runs as Kubeflow jobs (kubeflow.org/v1);"
            " false runs them as batch Jobs, which allows a single worker only."
        ),
    )
    progress_interval: float = Field(
        default=10.0,
        gt=0,
        description="Seconds between refreshes of a running study's trial counts in status.",
    )

    # --- ModelDeployment -----------------------------------------------------------------
    registry_poll_interval: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Seconds between looks at the MLflow registry for ModelDeployments that name an"
            " alias (models:/name@alias): a moved alias starts a rollout."
        ),
    )
    registry_webhook_listen: str | None = Field(
        default=None,
        pattern=r"^[^:\s]*:[0-9]{1,5}$",
        description=(
            "host:port on which the operator receives MLflow registry webhooks (alias set or"
            " deleted, version created), so a moved alias starts a rollout at once; polling"
            " stays as the fallback. Unset: polling only."
        ),
    )
    registry_webhook_url: str | None = Field(
        default=None,
        description=(
            "The URL MLflow posts those webhooks to (the operator's address as MLflow sees"
            " it); the operator registers the webhook under this URL at start-up."
        ),
    )
    registry_webhook_name: str = Field(
        default="maestro-operator",
        min_length=1,
        description="Name of the operator's webhook in MLflow (one per operator installation).",
    )
    audit_database_url: SecretStr | None = Field(
        default=None,
        description=(
            "PostgreSQL database of the governance audit log (postgresql://user:pw@host/db):"
            " where ModelDeployments with spec.model.requireApproval find approvals."
        ),
    )
    registry_webhook_secret: SecretStr | None = Field(
        default=None,
        description="HMAC secret of the webhook; deliveries without its signature are refused.",
    )
    serving_image: str = Field(
        default="ghcr.io/maestro-ml/maestro:0.1.0",
        min_length=1,
        description="Image of serving pods whose ModelDeployment names none (spec.image).",
    )
    serving_pod_labels: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "Extra labels on every serving pod (JSON object in the environment), e.g."
            ' {"maestro.dev/local-run": "true"} on the local platform.'
        ),
    )
    serving_pod_annotations: dict[str, str] = Field(
        default_factory=dict,
        description="Extra annotations on every serving pod (JSON object in the environment).",
    )
    serving_service_account: str | None = Field(
        default=None,
        description=(
            "ServiceAccount of serving pods (the one the Vault role is bound to); unset uses"
            " the namespace's default."
        ),
    )
    serving_egress_ports: list[int] = Field(
        default_factory=list,
        description=(
            "TCP ports serving pods may reach besides DNS, MLflow and Vault (JSON list), e.g."
            " [443] for an S3 artifact store or [4318] for an OTLP collector."
        ),
    )
    prediction_log_dir: str | None = Field(
        default=None,
        description=(
            "Directory serving pods write sampled prediction logs to (JSON lines, one file per"
            " pod under <namespace>/<deployment>/<revision>/); unset writes none."
        ),
    )
    prediction_log_claim: str | None = Field(
        default=None,
        description=(
            "PersistentVolumeClaim mounted at prediction_log_dir so drift checks can read the"
            " logs; unset mounts an emptyDir (the logs live as long as the pod)."
        ),
    )
    prediction_log_sample: float = Field(
        default=0.1, ge=0, le=1, description="Share of predictions logged (0-1)."
    )
    prediction_log_uri: str | None = Field(
        default=None,
        pattern=r"^s3://[^/]+(/.*)?$",
        description=(
            "s3:// prefix serving pods ship their prediction log to as Parquet (one folder per"
            " namespace and ModelDeployment) and DriftCheck jobs read; unset ships none and"
            " DriftChecks on a window get Ready=False (ObjectStoreNotConfigured)."
        ),
    )
    prediction_log_flush_seconds: float = Field(
        default=30.0, gt=0, description="Longest a logged prediction waits before it is shipped."
    )
    drift_reports_uri: str | None = Field(
        default=None,
        pattern=r"^s3://[^/]+(/.*)?$",
        description=(
            "s3:// prefix where DriftCheck jobs write each run's HTML report (under"
            " <namespace>/<name>/); unset keeps the report in the MLflow run only."
        ),
    )
    object_store_secret: str | None = Field(
        default=None,
        description=(
            "Secret (in each workload's namespace) with the object store's standard AWS_*"
            " variables (AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,"
            " AWS_REGION), given to serving pods and DriftCheck jobs as environment; unset"
            " leaves them to the pod's identity (e.g. IRSA on EKS)."
        ),
    )
    object_store_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="TCP port of the object store, opened in serving pods' egress policy.",
    )
    istio: bool = Field(
        default=True,
        description=(
            "Route ModelDeployment traffic with Istio (VirtualService + DestinationRule);"
            " false splits canary traffic by replica counts through the Service."
        ),
    )
    istio_namespace: str = Field(
        default="istio-system", description="Namespace of the Istio control plane and gateways."
    )
    prometheus_operator: bool = Field(
        default=True,
        description="Create a ServiceMonitor and a PrometheusRule for each ModelDeployment.",
    )
    monitoring_namespace: str = Field(
        default="monitoring",
        description="Namespace Prometheus scrapes from (allowed through the NetworkPolicy).",
    )
    istio_trust_domain: str = Field(
        default="cluster.local",
        description="Istio trust domain of the mesh's workload identities (callers' principals).",
    )
    runbook_base_url: str = Field(
        default="https://github.com/maestro-ml/maestro/blob/main/docs/runbooks",
        description="Base URL of the runbooks the serving alerts link to (<base>/<alert>.md).",
    )
    vault: VaultSettings = Field(
        default_factory=VaultSettings,
        description=(
            "How the operator reaches Vault to give each ModelDeployment with spec.secrets"
            " its own policy and role (MAESTRO_VAULT_* variables: security.vault_settings)."
        ),
    )
    vault_port: int = Field(
        default=8200, ge=1, le=65535, description="Port of Vault, allowed through egress."
    )
    cluster_domain: str = Field(
        default="cluster.local", description="DNS domain of the cluster (Service FQDNs)."
    )
