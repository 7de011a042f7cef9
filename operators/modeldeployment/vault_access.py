"""spec.secrets: before a ModelDeployment's pods can get their secrets, its Vault policy and
role must exist and its paths must hold a secret. This gives each deployment its access
(security.vault_access, written through security.vault_client) and says why it cannot,
as a condition reason and message, without ever reading a secret's value."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import hvac

from maestro.operators.api.common import Reason
from maestro.operators.api.modeldeployment import ModelDeploymentSpec
from maestro.operators.modeldeployment.decide import messages
from maestro.operators.modeldeployment.render import DeploymentIds
from maestro.operators.modeldeployment.render.names import service_account_name
from maestro.security.vault_access import DeploymentAccess, deployment_access, disallowed_paths
from maestro.security.vault_client import (
    VaultAccessError,
    VaultDenied,
    VaultUnavailable,
    apply_access,
    connect,
    missing_secrets,
)
from maestro.security.vault_settings import VaultSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SecretsProblem:
    reason: Reason
    message: str


@dataclass
class VaultGate:
    """The operator's Vault session and the access it wrote, per ModelDeployment (so an
    unchanged one costs a metadata read per path, not two writes)."""

    settings: VaultSettings
    _client: hvac.Client | None = None
    _written: dict[tuple[str, str], DeploymentAccess] = field(default_factory=dict)

    def client(self) -> hvac.Client:
        if self._client is None:
            self._client = connect(self.settings)
        return self._client

    def problem(self, ids: DeploymentIds, spec: ModelDeploymentSpec) -> SecretsProblem | None:
        """None when the deployment's pods can get their secrets (or it has none)."""
        if not spec.secrets:
            return None
        paths = [s.vault_path for s in spec.secrets]
        refused = disallowed_paths(paths, ids.namespace, self.settings.allowed_path_prefixes)
        if refused:
            return SecretsProblem(
                Reason.SECRET_PATH_NOT_ALLOWED,
                messages.secret_paths_not_allowed(
                    refused, ids.namespace, self.settings.allowed_path_prefixes
                ),
            )
        if not self.settings.configured:
            return SecretsProblem(Reason.VAULT_NOT_CONFIGURED, messages.VAULT_NOT_CONFIGURED)
        access = deployment_access(ids.namespace, ids.name, service_account_name(ids), paths)
        key = (ids.namespace, ids.name)
        try:
            client = self.client()
            if self._written.get(key) != access:
                apply_access(client, access, self.settings.auth_mount)
                self._written[key] = access
            missing = missing_secrets(client, paths)
        except (VaultAccessError, ValueError) as err:
            # A new login next time: the token may have expired or Vault restarted.
            self._client = None
            self._written.pop(key, None)
            reason = (
                Reason.VAULT_UNAVAILABLE
                if isinstance(err, VaultUnavailable)
                else Reason.VAULT_DENIED
                if isinstance(err, VaultDenied)
                else Reason.VAULT_ERROR
            )
            return SecretsProblem(reason, messages.vault_failed(str(err)))
        if missing:
            return SecretsProblem(Reason.SECRET_NOT_FOUND, messages.secrets_missing(missing))
        return None
