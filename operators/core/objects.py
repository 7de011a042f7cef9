"""Pieces of the manifests every kind renders: names that fit label values, the owner
reference that makes deletion cascade, object metadata, and the restricted Pod Security
settings of the project's image. Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from maestro.operators.api.common import API_VERSION, GROUP
from maestro.serving import contract

MANAGED_BY = {"app.kubernetes.io/managed-by": "maestro-operator"}
# The project image's fixed numeric user (the Dockerfile's), so runAsNonRoot is verifiable
# without an /etc/passwd lookup.
IMAGE_UID = 10001


@dataclass(frozen=True)
class Kind:
    """A kind of object, with its REST plural (what a controller owns, lists or watches)."""

    api_version: str
    kind: str
    plural: str


def digest(text: str) -> str:
    """Eight hex digits of the text's sha256: a short, stable name suffix."""
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def label_value(name: str) -> str:
    """A label value naming an object (names may be longer than the 63 a label allows)."""
    if len(name) <= 63:
        return name
    return f"{name[:54].rstrip('-.')}-{digest(name)}"


def owner_reference(kind: str, name: str, uid: str) -> dict[str, Any]:
    """The controller reference to one of our custom resources: deleting it deletes this."""
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(
    name: str, namespace: str, labels: Mapping[str, str], owner: Mapping[str, Any]
) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": namespace,
        "labels": dict(labels),
        "ownerReferences": [dict(owner)],
    }


def env_value(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


# The W3C trace context of the reconcile that created a pod template, on the template (the
# next reconciles read it back and render it unchanged, so tracing never rolls pods out)
# and, as TRACEPARENT, in its containers' environment, where their start-up span reads it.
TRACEPARENT_ANNOTATION = f"{GROUP}/traceparent"


def trace_env(traceparent: str | None, otlp_endpoint: str | None) -> list[dict[str, Any]]:
    """A container's tracing environment: where its spans go, and the trace they join."""
    env = [env_value(contract.OTLP_ENDPOINT, otlp_endpoint)] if otlp_endpoint else []
    if traceparent:
        env.append(env_value(contract.TRACEPARENT, traceparent))
    return env


def trace_annotations(traceparent: str | None) -> dict[str, str]:
    return {TRACEPARENT_ANNOTATION: traceparent} if traceparent else {}


def template_traceparent(workload: Mapping[str, Any]) -> str | None:
    """The trace context a live workload's pod template carries, if any."""
    template = (workload.get("spec") or {}).get("template") or {}
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(TRACEPARENT_ANNOTATION)
    return str(value) if value else None


def env_from_secret(name: str | None) -> dict[str, Any]:
    """A container's `envFrom` for every key of a Secret (optional: a missing Secret leaves
    the variables unset rather than the pod unstartable); {} without a name."""
    if not name:
        return {}
    return {"envFrom": [{"secretRef": {"name": name, "optional": True}}]}


def restricted_container_security_context(uid: int = IMAGE_UID) -> dict[str, Any]:
    """The container settings the "restricted" Pod Security profile requires, and a
    read-only root filesystem beyond it."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_pod_security_context(uid: int = IMAGE_UID) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
