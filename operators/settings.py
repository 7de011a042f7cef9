"""Operator settings: MAESTRO_* environment variables, overridden by command-line flags."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class OperatorConfig(BaseSettings):
    """How `maestro operator` runs. Every field can be set as MAESTRO_<FIELD_NAME>."""

    model_config = SettingsConfigDict(env_prefix="MAESTRO_", extra="ignore", frozen=True)

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
