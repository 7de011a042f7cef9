"""What one ModelDeployment may read in Vault, and what the operator may change there.

Each ModelDeployment gets its own ServiceAccount, its own ACL policy allowing `read` on exactly
the KV v2 paths of its `spec.secrets`, and its own Kubernetes-auth role bound to exactly that
ServiceAccount in that namespace with that policy. A pod of another ModelDeployment logs in
with its own role and gets 403 on these paths.

Pure: no I/O and no Vault client (security/vault_client.py applies what is built here).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from maestro.operators.api.access import DNS_LABEL
from maestro.operators.api.common import NAME_PATTERN

NAME_PREFIX = "maestro-serving-"
OPERATOR_POLICY_NAME = "maestro-operator"
NAMESPACE_PLACEHOLDER = "{namespace}"

# In a Vault policy path `*` (suffix) and `+` (segment) are globs: one of them in a path taken
# from a spec would widen the policy beyond the named secret. `..` and `//` name no KV secret
# and only serve to dodge a prefix check.
FORBIDDEN_IN_PATHS = ("..", "*", "+", "//")

_DNS_LABEL = re.compile(DNS_LABEL)
_DNS_SUBDOMAIN = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class DeploymentAccess:
    """The Vault access of one ModelDeployment: who logs in and which paths it reads."""

    namespace: str
    name: str
    service_account: str
    paths: tuple[str, ...]

    @property
    def role(self) -> str:
        """Name of the Kubernetes-auth role (the same as the policy's)."""
        return role_name(self.namespace, self.name)

    @property
    def policy(self) -> str:
        """Name of the ACL policy (the same as the role's)."""
        return role_name(self.namespace, self.name)


def role_name(namespace: str, name: str) -> str:
    """`maestro-serving-<namespace>.<name>`, the role's and the policy's name.

    A dot, not a dash, separates the two: a namespace is a DNS label (no dots) while names
    may hold dashes, so with a dash namespace `a-b` + name `c` and namespace `a` + name `b-c`
    would share one role and policy. Sharing a policy is a leak: a token keeps the policy's
    name, not its text, so a token issued to one would read what the other later writes in.
    Vault role and policy names allow letters, digits, `-`, `_` and `.`; Kubernetes names
    use a subset of those, in lower case (Vault lower-cases policy names).
    """
    return f"{NAME_PREFIX}{namespace}.{name}"


def deployment_access(
    namespace: str, name: str, service_account: str, secrets_paths: Iterable[str]
) -> DeploymentAccess:
    """The access of ModelDeployment namespace/name, whose pods run as service_account.

    The names are checked as Kubernetes checks them, because they end up in Vault names, in
    an HCL comment and in the role's bindings: a `*` bound as ServiceAccount would admit
    every account. The paths are not checked here (see `disallowed_paths`).
    """
    if not _DNS_LABEL.fullmatch(namespace) or len(namespace) > 63:
        raise ValueError(f"namespace {namespace!r} is not a Kubernetes namespace name")
    for kind, value in (("ModelDeployment", name), ("ServiceAccount", service_account)):
        if not _DNS_SUBDOMAIN.fullmatch(value) or len(value) > 253:
            raise ValueError(f"{kind} name {value!r} is not a Kubernetes object name")
    return DeploymentAccess(
        namespace=namespace,
        name=name,
        service_account=service_account,
        paths=tuple(sorted(set(secrets_paths))),
    )


def policy_hcl(access: DeploymentAccess) -> str:
    """The ACL policy: `read` on each of the deployment's paths and nothing else.

    Paths are JSON-quoted: HCL strings share JSON's escapes, so no path can close the string.
    """
    lines = [
        f"# Maestro ModelDeployment {access.namespace}/{access.name}"
        f" (ServiceAccount {access.service_account}): read its secrets."
    ]
    for path in access.paths:
        lines.append(f'path {json.dumps(path)} {{ capabilities = ["read"] }}')
    return "\n".join(lines) + "\n"


def role_body(access: DeploymentAccess, ttl_seconds: int = 3600) -> dict[str, object]:
    """Keyword arguments of hvac's `Kubernetes.create_role` (besides name and mount_point).

    hvac 2.x takes `policies`, `ttl` and `max_ttl` and sends them under those names, which
    Vault stores as the role's `token_policies`, `token_ttl` and `token_max_ttl`. The maximum
    equals the TTL: the Vault Agent logs in again with the pod's token when it expires, and a
    leaked Vault token is good for one TTL at most.
    """
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be positive, not {ttl_seconds}")
    return {
        "bound_service_account_names": [access.service_account],
        "bound_service_account_namespaces": [access.namespace],
        "policies": [access.policy],
        "ttl": ttl_seconds,
        "max_ttl": ttl_seconds,
    }


def _expanded(prefix: str, namespace: str) -> str:
    # str.replace rather than str.format: other braces in a prefix stay literal.
    prefix = prefix.replace(NAMESPACE_PLACEHOLDER, namespace)
    # A prefix ends at a path segment: `secret/data/teams/a` must not admit `.../ab/x`.
    return prefix if prefix.endswith("/") else prefix + "/"


def path_allowed(path: str, namespace: str, prefixes: Sequence[str]) -> bool:
    """Whether a ModelDeployment in namespace may name this Vault path.

    Allowed: below one of the prefixes, `{namespace}` replaced by the namespace (e.g.
    `secret/data/teams/{namespace}/`), naming a secret (not the prefix itself, no trailing
    `/`), and free of globs, `..` and `//`.
    """
    if not path or path.endswith("/") or any(bad in path for bad in FORBIDDEN_IN_PATHS):
        return False
    for prefix in prefixes:
        expanded = _expanded(prefix, namespace)
        if any(bad in expanded for bad in FORBIDDEN_IN_PATHS):
            # A prefix that is itself a glob, or made one by an odd namespace, admits nothing.
            continue
        if path.startswith(expanded) and len(path) > len(expanded):
            return True
    return False


def disallowed_paths(paths: Iterable[str], namespace: str, prefixes: Sequence[str]) -> list[str]:
    """The paths `path_allowed` refuses, each once, in the order given."""
    refused = [path for path in paths if not path_allowed(path, namespace, prefixes)]
    return list(dict.fromkeys(refused))


def kv2_metadata_path(path: str) -> str:
    """The KV v2 metadata path of a data path: secret/data/x/y -> secret/metadata/x/y.

    Metadata says whether a secret exists (versions, deletion times) without its value.
    """
    mount, sep, rest = path.strip("/").partition("/data/")
    if not sep or not mount:
        raise ValueError(f"{path!r} is not a KV v2 data path (<mount>/data/<name>)")
    return f"{mount}/metadata/{rest}"


def _metadata_glob(prefix: str) -> str:
    # {namespace} becomes the one-segment glob `+`: the operator checks every namespace's
    # secrets. Within a segment (teams-{namespace}/) no glob would be that narrow.
    segments = kv2_metadata_path(prefix).split("/")
    if any(NAMESPACE_PLACEHOLDER in s and s != NAMESPACE_PLACEHOLDER for s in segments):
        raise ValueError(f"{prefix!r}: {NAMESPACE_PLACEHOLDER} must be a whole path segment")
    globbed = "/".join("+" if s == NAMESPACE_PLACEHOLDER else s for s in segments)
    return globbed if globbed.endswith("/") else globbed + "/"


def operator_policy_hcl(
    auth_mount: str = "kubernetes", metadata_prefixes: Sequence[str] = ()
) -> str:
    """The operator's own policy: manage the per-deployment policies and roles, read nothing.

    It never reads a secret: the serving pods' Vault Agents do, with their own roles. With
    metadata_prefixes (the allowed path prefixes) it may also read the KV v2 metadata below
    them, to tell a deployment that names a secret nobody wrote (see `missing_secrets`);
    metadata holds versions and timestamps, never values.
    """
    mount = auth_mount.strip("/")
    if not mount or any(bad in mount for bad in FORBIDDEN_IN_PATHS) or '"' in mount:
        raise ValueError(f"auth mount {auth_mount!r} is not a plain Vault mount path")
    capabilities = '["create", "update", "read", "delete"]'
    lines = [
        "# Maestro operator: writes one policy and one Kubernetes-auth role per"
        " ModelDeployment, reads no secret.",
        f'path "sys/policies/acl/{NAME_PREFIX}*" {{ capabilities = {capabilities} }}',
        f'path "auth/{mount}/role/{NAME_PREFIX}*" {{ capabilities = {capabilities} }}',
    ]
    for prefix in dict.fromkeys(metadata_prefixes):
        if any(bad in prefix for bad in FORBIDDEN_IN_PATHS):
            raise ValueError(f"{prefix!r}: no {', '.join(FORBIDDEN_IN_PATHS)} in a prefix")
        glob = json.dumps(_metadata_glob(prefix) + "*")
        lines.append(f'path {glob} {{ capabilities = ["read"] }}')
    return "\n".join(lines) + "\n"
