"""How the operator reaches Vault: MAESTRO_VAULT_* environment variables.

No secret value lives here: the token is read from `token_file` (or obtained by Kubernetes
auth) at each login, so a rotated token works and none appears in a repr or a log line.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from maestro.security.vault_access import FORBIDDEN_IN_PATHS

ENV_PREFIX = "MAESTRO_VAULT_"
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
# What the Vault Agent's static_secret_render_interval accepts, kept to whole units.
RENDER_INTERVAL_PATTERN = r"^([0-9]+(ms|s|m|h))+$"


class VaultSettings(BaseSettings):
    """The operator's Vault connection. Every field can be set as MAESTRO_VAULT_<FIELD_NAME>."""

    # extra="ignore": OperatorConfig's own MAESTRO_VAULT_PORT shares the prefix.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    addr: str | None = Field(
        default=None,
        description=(
            "Vault's address, e.g. https://vault.vault:8200. Unset: Vault is not configured"
            " and ModelDeployments with spec.secrets cannot be given access."
        ),
    )
    token_file: Path | None = Field(
        default=None,
        description=(
            "File holding the operator's Vault token (e.g. written by a Vault Agent); read"
            " again at each login, so a rotated token takes over."
        ),
    )
    auth_role: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "Kubernetes-auth role the operator logs in with, using its ServiceAccount token"
            " (jwt_path); the alternative to token_file."
        ),
    )
    auth_mount: str = Field(
        default="kubernetes",
        min_length=1,
        pattern=r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$",
        description=(
            "Mount path of the Kubernetes auth method: where the operator logs in and where"
            " it writes the ModelDeployments' roles."
        ),
    )
    jwt_path: Path = Field(
        default=SERVICE_ACCOUNT_TOKEN,
        description="The operator's ServiceAccount token, sent at a Kubernetes-auth login.",
    )
    allowed_path_prefixes: list[str] = Field(
        default_factory=lambda: ["secret/data/maestro/"],
        min_length=1,
        description=(
            "KV v2 path prefixes a ModelDeployment's spec.secrets may name (JSON list in the"
            " environment); {namespace} stands for the ModelDeployment's namespace, e.g."
            " secret/data/teams/{namespace}/. Each ends with '/'."
        ),
    )
    timeout_seconds: float = Field(
        default=5.0, gt=0, description="Seconds allowed for one request to Vault."
    )
    render_interval: str = Field(
        default="1m",
        pattern=RENDER_INTERVAL_PATTERN,
        description=(
            "How often the serving pods' Vault Agent reads static KV secrets again (e.g. 1m),"
            " so a rotated value reaches running pods."
        ),
    )

    @field_validator("allowed_path_prefixes")
    @classmethod
    def _prefixes_are_plain_directories(cls, prefixes: list[str]) -> list[str]:
        # Without the final '/' a prefix reads as if it admitted siblings
        # (secret/data/maestro-other/); a glob in one would suggest a wildcard match,
        # while prefixes are compared as plain text.
        for prefix in prefixes:
            if not prefix.endswith("/") or prefix.startswith("/"):
                raise ValueError(f"{prefix!r}: a prefix is relative and ends with '/'")
            if any(bad in prefix for bad in FORBIDDEN_IN_PATHS):
                raise ValueError(f"{prefix!r}: no {', '.join(FORBIDDEN_IN_PATHS)} in a prefix")
        return prefixes

    @model_validator(mode="after")
    def _one_way_to_log_in(self) -> VaultSettings:
        if self.token_file is not None and self.auth_role is not None:
            raise ValueError("token_file and auth_role: set one way to log in, not both")
        if self.addr is not None and self.token_file is None and self.auth_role is None:
            raise ValueError("addr is set: also set token_file or auth_role to log in")
        return self

    @property
    def configured(self) -> bool:
        """Whether Vault is configured at all (addr set)."""
        return self.addr is not None
