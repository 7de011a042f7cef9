"""Operator settings: MAESTRO_* environment variables, overridden by command-line flags."""

from __future__ import annotations

from pydantic import Field
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
    log_format: str = Field(default="plain", description="Kopf log format: plain, full or json.")
    verbose: bool = Field(default=False, description="Debug logging.")
