"""Settings of the `maestro model`, `maestro audit` and `maestro lineage` commands, read
from the environment once and passed in."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class GovernanceSettings(BaseSettings):
    """Where the registry and the audit log are. Fields read MAESTRO_<FIELD_NAME>."""

    model_config = SettingsConfigDict(env_prefix="MAESTRO_", extra="ignore", frozen=True)

    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "MAESTRO_MLFLOW_TRACKING_URI"),
        description="MLflow server holding the registered models (MLFLOW_TRACKING_URI).",
    )
    audit_database_url: SecretStr | None = Field(
        default=None,
        description=(
            "PostgreSQL database of the audit log, e.g."
            " postgresql://user:pw@host:5432/governance (MAESTRO_AUDIT_DATABASE_URL)."
        ),
    )
    policy: Path | None = Field(
        default=None,
        description="Promotion policy file used when --policy is not given (MAESTRO_POLICY).",
    )
    actor: str | None = Field(
        default=None,
        description=(
            "Who runs the command when no Kubernetes identity is available, e.g. a CI"
            " system's user (MAESTRO_ACTOR); recorded with its source."
        ),
    )
