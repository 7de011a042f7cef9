"""The Vault calls of per-ModelDeployment access: log in, write or remove a deployment's
policy and Kubernetes-auth role, read and write KV v2 secrets. The only I/O of the feature.

hvac raises its own exceptions, and requests' for the network; callers see three of ours:
`VaultUnavailable` (worth retrying), `VaultDenied` (a policy or a login says no) and their
base `VaultAccessError` (anything else Vault refuses, e.g. a bad request). No message carries
a token: they name the address, the operation and what Vault or the network answered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

from maestro.security.vault_access import (
    NAME_PREFIX,
    DeploymentAccess,
    kv2_metadata_path,
    policy_hcl,
    role_body,
)
from maestro.security.vault_settings import VaultSettings

# Vault (or what is in front of it) cannot serve now: no connection, no answer in time, 500,
# 501 (not initialised), 502, 503 (sealed or standby) and 429. Retrying later may succeed.
_UNAVAILABLE: tuple[type[Exception], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.VaultNotInitialized,
    hvac.exceptions.BadGateway,
    hvac.exceptions.VaultDown,
    hvac.exceptions.RateLimitExceeded,
)
# Vault answers 403 to a bad token as to a policy that does not allow the path.
_DENIED: tuple[type[Exception], ...] = (
    hvac.exceptions.Forbidden,
    hvac.exceptions.Unauthorized,
)


class VaultAccessError(Exception):
    """Vault refused or failed an operation."""


class VaultUnavailable(VaultAccessError):
    """Vault could not be reached or could not serve: refused connection, timeout, 5xx, sealed."""


class VaultDenied(VaultAccessError):
    """Vault refused the operation (403): the token or the login does not allow it."""


def _reason(err: Exception) -> str:
    if isinstance(err, hvac.exceptions.VaultError):
        # Vault's own error strings (e.g. "Vault is sealed", "permission denied"); they never
        # echo the request's token. str(err) would add the URL, already in our message.
        errors = [err.errors] if isinstance(err.errors, str) else err.errors or []
        # Vault wraps them as "1 error occurred:\n\t* permission denied\n\n": one line.
        return "; ".join(" ".join(str(e).split()) for e in errors) or type(err).__name__
    if isinstance(err, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(err, requests.exceptions.ConnectionError):
        return "cannot connect"
    return type(err).__name__


@contextmanager
def _calling(
    address: str, operation: str, denied: tuple[type[Exception], ...] = _DENIED
) -> Iterator[None]:
    """Maps what hvac and requests raise during `operation` onto our exceptions."""
    try:
        yield
    except denied as err:
        raise VaultDenied(f"Vault at {address} denied {operation}: {_reason(err)}") from err
    except _UNAVAILABLE as err:
        raise VaultUnavailable(
            f"Vault at {address} unavailable for {operation}: {_reason(err)}"
        ) from err
    except hvac.exceptions.VaultError as err:
        raise VaultAccessError(f"Vault at {address} refused {operation}: {_reason(err)}") from err


def _read_secret_file(address: str, path: Path, what: str) -> str:
    # A file the Vault Agent or the kubelet (re)writes may be missing for a moment: report
    # it as unavailability, worth a retry, naming the file and never its content.
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise VaultUnavailable(
            f"cannot log in to Vault at {address}: {what} {path} unreadable ({err.strerror})"
        ) from None
    if not value:
        raise VaultUnavailable(f"cannot log in to Vault at {address}: {what} {path} is empty")
    return value


def connect(settings: VaultSettings) -> hvac.Client:
    """A client logged in with the token file (read now) or by Kubernetes auth.

    The token file is read at each call, so a rotated token is used at the next connect.
    """
    if settings.addr is None:
        raise ValueError("Vault is not configured: set MAESTRO_VAULT_ADDR")
    address = settings.addr
    # token="" keeps hvac from falling back to VAULT_TOKEN or ~/.vault-token.
    client = hvac.Client(url=address, token="", timeout=settings.timeout_seconds)
    if settings.token_file is not None:
        client.token = _read_secret_file(address, settings.token_file, "token file")
        # Check the token now, so a wrong one fails here and not in the first real call.
        with _calling(address, f"a token lookup with the token from {settings.token_file}"):
            client.auth.token.lookup_self()
    elif settings.auth_role is not None:
        jwt = _read_secret_file(address, settings.jwt_path, "ServiceAccount token")
        operation = f"a Kubernetes-auth login as role {settings.auth_role}"
        # Vault answers an unknown role or a JWT it cannot verify with 400, not 403.
        refused = (*_DENIED, hvac.exceptions.InvalidRequest)
        with _calling(address, f"{operation} at auth/{settings.auth_mount}", denied=refused):
            client.auth.kubernetes.login(settings.auth_role, jwt, mount_point=settings.auth_mount)
    else:
        raise ValueError("Vault login not configured: set token_file or auth_role")
    return client


def apply_access(
    client: hvac.Client,
    access: DeploymentAccess,
    auth_mount: str = "kubernetes",
    ttl_seconds: int = 3600,
) -> None:
    """Write the deployment's policy, then its role. Both are upserts, so this is idempotent.

    The policy goes first: a role never names a policy that is not there yet.
    """
    with _calling(client.url, f"writing policy {access.policy}"):
        client.sys.create_or_update_acl_policy(name=access.policy, policy=policy_hcl(access))
    with _calling(client.url, f"writing role auth/{auth_mount}/role/{access.role}"):
        client.auth.kubernetes.create_role(
            name=access.role, mount_point=auth_mount, **role_body(access, ttl_seconds)
        )


def remove_access(client: hvac.Client, role_and_policy_name: str, auth_mount: str) -> None:
    """Delete a deployment's role, then its policy; either being gone already is fine.

    The role goes first so no new login gets a token naming a policy about to disappear.
    """
    if not role_and_policy_name.startswith(NAME_PREFIX):
        # Only what apply_access wrote: the operator's policy allows no other name anyway.
        raise ValueError(f"{role_and_policy_name!r} is not a ModelDeployment's role or policy")
    role = f"auth/{auth_mount}/role/{role_and_policy_name}"
    # suppress inside _calling: a 404 (already gone) is success, not an error to map.
    with _calling(client.url, f"deleting role {role}"), suppress(hvac.exceptions.InvalidPath):
        client.auth.kubernetes.delete_role(name=role_and_policy_name, mount_point=auth_mount)
    policy = f"policy {role_and_policy_name}"
    with _calling(client.url, f"deleting {policy}"), suppress(hvac.exceptions.InvalidPath):
        client.sys.delete_acl_policy(name=role_and_policy_name)


def _kv2_data_path(path: str) -> str:
    # Callers name the same path as spec.secrets and the policy: the API path with /data/.
    if not kv2_metadata_path(path).partition("/metadata/")[2]:
        raise ValueError(f"{path!r} names no secret below its KV v2 mount")
    return path.strip("/")


def read_kv(client: hvac.Client, path: str) -> dict[str, str]:
    """The latest version of the KV v2 secret at `path` (e.g. secret/data/maestro/iris).

    KV v2 values may be any JSON; those that are not strings come back as JSON text.
    """
    api_path = _kv2_data_path(path)
    with _calling(client.url, f"reading {api_path}"):
        response: Any = client.read(api_path)
    data = (response or {}).get("data", {}).get("data")
    if data is None:
        # Never written, or the latest version deleted or destroyed.
        raise LookupError(f"no secret at {api_path} in Vault at {client.url}")
    return {
        str(key): value if isinstance(value, str) else json.dumps(value)
        for key, value in data.items()
    }


def write_kv(client: hvac.Client, path: str, data: Mapping[str, str]) -> None:
    """Write a new version of the KV v2 secret at `path` (e.g. secret/data/maestro/iris)."""
    api_path = _kv2_data_path(path)
    with _calling(client.url, f"writing {api_path}"):
        client.write_data(api_path, data={"data": dict(data)})


def _vault_time(text: str) -> datetime | None:
    # Vault writes RFC 3339 with nanoseconds; fromisoformat takes at most microseconds.
    try:
        return datetime.fromisoformat(re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", text))
    except ValueError:
        return None


def _latest_version_readable(metadata: Mapping[str, Any], now: datetime) -> bool:
    versions = metadata.get("versions") or {}
    latest = versions.get(str(metadata.get("current_version")))
    if not latest or latest.get("destroyed"):
        return False
    deletion = latest.get("deletion_time") or ""
    if not deletion:
        return True
    # A deletion time in the future (delete_version_after) still reads today; an unreadable
    # one counts as deleted, so the deployment is told rather than its pods failing.
    deleted_at = _vault_time(deletion)
    return deleted_at is not None and deleted_at > now


def missing_secrets(
    client: hvac.Client, paths: Iterable[str], now: datetime | None = None
) -> list[str]:
    """The KV v2 data paths, each once in the order given, whose latest version cannot be
    read: never written, deleted or destroyed.

    Only metadata is read (see `operator_policy_hcl`'s metadata_prefixes), never a value.
    """
    now = now or datetime.now(UTC)
    missing = []
    for path in dict.fromkeys(paths):
        metadata_path = kv2_metadata_path(path)
        with _calling(client.url, f"reading {metadata_path}"):
            response: Any = client.read(metadata_path)
        if not _latest_version_readable((response or {}).get("data") or {}, now):
            missing.append(path)
    return missing
