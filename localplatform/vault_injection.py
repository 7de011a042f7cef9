"""What the Vault Agent injector does to an annotated pod, as a pure JSON patch.

The local platform stands in for the mutating webhook of HashiCorp's vault-k8s (v1.4):
this module is its decision and rendering half (vault-k8s `agent/agent.go`,
`container_init_sidecar.go`, `container_sidecar.go`, `container_volume.go`), reduced to
the annotations Maestro uses; `vault_injector` serves it. The containers it adds run the
real `vault agent` with the JSON config rendered here. Pure: no I/O.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_IMAGE = "hashicorp/vault:1.14.8"

_PREFIX = "vault.hashicorp.com/"
INJECT = _PREFIX + "agent-inject"
STATUS = _PREFIX + "agent-inject-status"
ROLE = _PREFIX + "role"
SECRET = _PREFIX + "agent-inject-secret-"
TEMPLATE = _PREFIX + "agent-inject-template-"
PRE_POPULATE = _PREFIX + "agent-pre-populate"
PRE_POPULATE_ONLY = _PREFIX + "agent-pre-populate-only"
INIT_FIRST = _PREFIX + "agent-init-first"
TOKEN_VOLUME = _PREFIX + "agent-service-account-token-volume-name"
RENDER_INTERVAL = _PREFIX + "template-static-secret-render-interval"
AUTH_PATH = _PREFIX + "auth-path"
SERVICE = _PREFIX + "service"

DEFAULT_AUTH_PATH = "auth/kubernetes"
DEFAULT_TEMPLATE = (
    '{{ with secret "%s" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}'
)
HOME = "/home/vault"
SECRETS_DIR = "/vault/secrets"
SECRETS_VOLUME = "vault-secrets"
HOME_INIT = "home-init"
HOME_SIDECAR = "home-sidecar"
KUBE_TOKEN_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
VAULT_TOKEN_MOUNT = "/var/run/secrets/vault.hashicorp.com/serviceaccount"
INIT_NAME = "vault-agent-init"
SIDECAR_NAME = "vault-agent"
CONTAINER_ARG = (
    "echo ${VAULT_CONFIG?} | base64 -d > /home/vault/config.json"
    " && vault agent -config=/home/vault/config.json"
)
RESOURCES = {
    "requests": {"cpu": "250m", "memory": "64Mi"},
    "limits": {"cpu": "500m", "memory": "128Mi"},
}
# vault-k8s's own security context has no seccompProfile, so its agents are refused where
# `restricted` is enforced; this one passes (maestro.security.pod_security).
SECURITY_CONTEXT = {
    "runAsUser": 100,
    "runAsGroup": 1000,
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}

WEBHOOK_CONFIGURATION_NAME = "maestro-local-vault-agent-injector"
WEBHOOK_NAME = "vault.agent.injector.maestro.local"
LOCAL_RUN_LABEL = "maestro.dev/local-run"

# Go's strconv.ParseBool, which vault-k8s parses every boolean annotation with.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


@dataclass(frozen=True)
class Secret:
    """One rendered file: /vault/secrets/<name>."""

    name: str
    path: str
    template: str


@dataclass(frozen=True)
class TokenVolume:
    """The pod volume holding a Kubernetes service-account token, as the agents mount it."""

    volume: str
    mount_path: str
    token_path: str


def _bool(annotations: Mapping[str, str], key: str, default: bool) -> bool:
    raw = annotations.get(key)
    if raw is None:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"annotation {key}: {raw!r} is not a boolean")


def should_inject(annotations: Mapping[str, str]) -> bool:
    """Annotated for injection and not injected yet (vault-k8s ShouldInject)."""
    # The status annotation is the only idempotence vault-k8s has: a pod re-sent to the
    # webhook (reinvocation, or a retried CREATE) must not get a second agent.
    return _bool(annotations, INJECT, False) and annotations.get(STATUS) != "injected"


def secrets(annotations: Mapping[str, str]) -> list[Secret]:
    """The files to render, sorted by name so the config (and the patch) is deterministic.

    As in vault-k8s, either a secret or a template annotation declares a file, the file
    name is the annotation's suffix lower-cased, and annotations with a blank value count
    for nothing."""
    raw_names: set[str] = set()
    for key, value in annotations.items():
        if not value.strip():
            continue
        for prefix in (SECRET, TEMPLATE):
            if key.startswith(prefix) and len(key) > len(prefix):
                raw_names.add(key[len(prefix) :])
    found = []
    for raw in raw_names:
        path = annotations.get(SECRET + raw, "")
        template = annotations.get(TEMPLATE + raw, "") or DEFAULT_TEMPLATE % path
        found.append(Secret(name=raw.lower(), path=path, template=template))
    return sorted(found, key=lambda s: (s.name, s.path))


def token_volume(pod: Mapping[str, Any]) -> TokenVolume:
    """Where the agents read the pod's service-account token for Vault's Kubernetes auth."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    spec = pod.get("spec") or {}
    named = annotations.get(TOKEN_VOLUME)
    if named:
        for volume in spec.get("volumes") or []:
            if volume.get("name") != named:
                continue
            for source in (volume.get("projected") or {}).get("sources") or []:
                token_file = (source.get("serviceAccountToken") or {}).get("path")
                if token_file:
                    token_path = f"{VAULT_TOKEN_MOUNT}/{token_file}"
                    return TokenVolume(named, VAULT_TOKEN_MOUNT, token_path)
            raise ValueError(
                f"annotation {TOKEN_VOLUME}: volume {named!r} is not a projected"
                " serviceAccountToken volume"
            )
        raise ValueError(f"annotation {TOKEN_VOLUME}: the pod has no volume {named!r}")
    for container in spec.get("containers") or []:
        for mount in container.get("volumeMounts") or []:
            if mount.get("mountPath") == KUBE_TOKEN_MOUNT:
                return TokenVolume(mount["name"], KUBE_TOKEN_MOUNT, f"{KUBE_TOKEN_MOUNT}/token")
    raise ValueError(
        f"no service account token: no container mounts {KUBE_TOKEN_MOUNT}"
        f" and the pod has no {TOKEN_VOLUME} annotation"
    )


def _role(annotations: Mapping[str, str]) -> str:
    role = annotations.get(ROLE)
    if not role:
        raise ValueError(f"annotation {ROLE} is required (the Vault role to log in as)")
    return role


def agent_config(
    annotations: Mapping[str, str], vault_address: str, token_path: str, *, init: bool
) -> dict[str, Any]:
    """The Vault Agent JSON config of the init container (`init`) or of the sidecar."""
    role = _role(annotations)
    template_config: dict[str, Any] = {"exit_on_retry_failure": True}
    if annotations.get(RENDER_INTERVAL):
        template_config["static_secret_render_interval"] = annotations[RENDER_INTERVAL]
    config: dict[str, Any] = {
        "auto_auth": {
            "method": {
                "type": "kubernetes",
                "mount_path": annotations.get(AUTH_PATH) or DEFAULT_AUTH_PATH,
                "config": {"role": role, "token_path": token_path},
            },
            "sink": [{"type": "file", "config": {"path": f"{HOME}/.vault-token"}}],
        },
        "exit_after_auth": init,
        "pid_file": f"{HOME}/.pid",
        "vault": {"address": annotations.get(SERVICE) or vault_address},
    }
    templates = [
        {
            "destination": f"{SECRETS_DIR}/{secret.name}",
            "contents": secret.template,
            "left_delimiter": "{{",
            "right_delimiter": "}}",
        }
        for secret in secrets(annotations)
    ]
    # Go's `omitempty`: vault-k8s leaves the key out rather than sending an empty list.
    if templates:
        config["template"] = templates
    config["template_config"] = template_config
    return config


def _agent_container(
    name: str, home: str, image: str, config: Mapping[str, Any], token: TokenVolume
) -> dict[str, Any]:
    encoded = base64.b64encode(json.dumps(config, separators=(",", ":")).encode()).decode()
    token_mount = {"name": token.volume, "mountPath": token.mount_path, "readOnly": True}
    home_mount = {"name": home, "mountPath": HOME, "readOnly": False}
    # vault-k8s's order: the init container lists its home first, the sidecar its token.
    mounts = [home_mount, token_mount] if name == INIT_NAME else [token_mount, home_mount]
    return {
        "name": name,
        "image": image,
        "command": ["/bin/sh", "-ec"],
        "args": [CONTAINER_ARG],
        "env": [
            {"name": "VAULT_LOG_LEVEL", "value": "info"},
            {"name": "VAULT_LOG_FORMAT", "value": "standard"},
            {"name": "VAULT_CONFIG", "value": encoded},
        ],
        "resources": copy.deepcopy(RESOURCES),
        "securityContext": copy.deepcopy(SECURITY_CONTEXT),
        "volumeMounts": [*mounts, _secrets_mount()],
    }


def _secrets_mount() -> dict[str, Any]:
    return {"name": SECRETS_VOLUME, "mountPath": SECRETS_DIR, "readOnly": False}


def _memory_volume(name: str) -> dict[str, Any]:
    return {"name": name, "emptyDir": {"medium": "Memory"}}


def escape_pointer(token: str) -> str:
    """One RFC 6901 reference token: `~` first, else the `~1` made for `/` would change."""
    return token.replace("~", "~0").replace("/", "~1")


def _append(existing: list[Any] | None, items: list[Any], path: str) -> list[dict[str, Any]]:
    """`add` ops appending `items` to the list at `path`; a missing or empty list is added
    whole, since `path/-` cannot address into a list that does not exist."""
    ops: list[dict[str, Any]] = []
    pending = list(items)
    if not existing and pending:
        ops.append({"op": "add", "path": path, "value": [pending.pop(0)]})
    ops += [{"op": "add", "path": f"{path}/-", "value": item} for item in pending]
    return ops


def inject(
    pod: Mapping[str, Any], vault_address: str, image: str = DEFAULT_IMAGE
) -> list[dict[str, Any]]:
    """RFC 6902 operations that add the Vault Agent to `pod`; [] when it is not annotated
    for injection or already injected. Raises ValueError (naming the annotation) when the
    annotations cannot be honoured; the webhook denies the pod with that message."""
    metadata = pod.get("metadata") or {}
    annotations: Mapping[str, str] = metadata.get("annotations") or {}
    if not should_inject(annotations):
        return []
    _role(annotations)  # the first thing to fix on a pod that also lacks a token
    spec = pod.get("spec") or {}
    pre_populate = _bool(annotations, PRE_POPULATE, True)
    pre_populate_only = _bool(annotations, PRE_POPULATE_ONLY, False)
    init_first = _bool(annotations, INIT_FIRST, False)
    token = token_volume(pod)
    init_config = agent_config(annotations, vault_address, token.token_path, init=True)
    sidecar_config = agent_config(annotations, vault_address, token.token_path, init=False)

    volumes = []
    if pre_populate:
        volumes.append(_memory_volume(HOME_INIT))
    if not pre_populate_only:
        volumes.append(_memory_volume(HOME_SIDECAR))
    volumes.append(_memory_volume(SECRETS_VOLUME))
    ops = _append(spec.get("volumes"), volumes, "/spec/volumes")

    # Existing containers get their mounts before any agent is inserted, so the indices
    # below are the pod's own.
    for i, container in enumerate(spec.get("containers") or []):
        path = f"/spec/containers/{i}/volumeMounts"
        ops += _append(container.get("volumeMounts"), [_secrets_mount()], path)
    init_containers = spec.get("initContainers") or []
    if pre_populate:
        # Only then: without the init agent nothing is rendered before they run.
        for i, container in enumerate(init_containers):
            path = f"/spec/initContainers/{i}/volumeMounts"
            ops += _append(container.get("volumeMounts"), [_secrets_mount()], path)
        agent = _agent_container(INIT_NAME, HOME_INIT, image, init_config, token)
        if init_first and init_containers:
            # vault-k8s removes and re-adds the whole list; inserting at 0 is the same pod.
            ops.append({"op": "add", "path": "/spec/initContainers/0", "value": agent})
        else:
            ops += _append(init_containers, [agent], "/spec/initContainers")
    if not pre_populate_only:
        agent = _agent_container(SIDECAR_NAME, HOME_SIDECAR, image, sidecar_config, token)
        ops += _append(spec.get("containers"), [agent], "/spec/containers")

    if metadata.get("annotations"):
        path = f"/metadata/annotations/{escape_pointer(STATUS)}"
        ops.append({"op": "add", "path": path, "value": "injected"})
    else:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {STATUS: "injected"}})
    return ops


def webhook_configuration(url: str, ca_bundle_pem: bytes) -> dict[str, Any]:
    """The MutatingWebhookConfiguration sending the local-run pods' CREATEs to `url`."""
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": WEBHOOK_CONFIGURATION_NAME},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_bundle_pem).decode()},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                    }
                ],
                "objectSelector": {"matchLabels": {LOCAL_RUN_LABEL: "true"}},
                # vault-helm's default: a webhook that is down admits pods without agents
                # rather than blocking every pod the selector matches.
                "failurePolicy": "Ignore",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
                "reinvocationPolicy": "Never",
            }
        ],
    }
