"""A container's environment as a kubelet builds it (pure): the pod's base variables,
`envFrom` ConfigMaps and Secrets, then `env` with the downward API, Secret and ConfigMap
keys, resource fields and Kubernetes' `$(VAR)` expansion. The Secrets and ConfigMaps come
in as plain data (EnvSources), read beforehand by whoever does I/O."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

# "cm" rather than "configmap": the kind appears as such in the container's waiting
# message when a key is missing.
SourceKind = Literal["secret", "cm"]


@dataclass(frozen=True)
class SourceRef:
    """A Secret or ConfigMap of the pod's namespace that a container's env refers to."""

    kind: SourceKind
    name: str


class SourceUnavailable(Exception):
    """A Secret or ConfigMap that is not optional could not be read; the message says why.

    Neither an OSError nor a ValueError, so that a readiness probe does not mistake it for
    a failed check."""


@dataclass(frozen=True)
class EnvSources:
    """The decoded data of each Secret and ConfigMap that could be read, and why each
    other one could not."""

    data: Mapping[SourceRef, Mapping[str, str]] = field(default_factory=dict)
    unavailable: Mapping[SourceRef, str] = field(default_factory=dict)

    def lookup(self, ref: SourceRef, namespace: str) -> Mapping[str, str]:
        if ref in self.data:
            return self.data[ref]
        reason = self.unavailable.get(ref, f"{ref.kind} {namespace}/{ref.name} was not read")
        raise SourceUnavailable(reason)


def decode_secret_data(data: Mapping[str, str] | None) -> dict[str, str]:
    """A Secret's `data` (base64) as text."""
    return {k: base64.b64decode(v).decode() for k, v in (data or {}).items()}


_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)|\$\$")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: unknown references stay as written, $$ escapes."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, value)


def field_ref(pod: Mapping[str, Any], path: str) -> str:
    """The downward API's value of `path` for `pod`; ValueError for a path not supported."""
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": status.get("hostIP"),
        "status.podIP": status.get("podIP"),
        "status.podIPs": status.get("podIP"),
    }
    if path not in simple:
        raise ValueError(f"unsupported fieldRef {path!r}")
    return str(simple[path] or "")


def pod_base_env(
    *, venv_bin: Path, host_path: str, workdir: Path, hostname: str, ip: str
) -> dict[str, str]:
    """What every container of a local pod starts from, before its own env."""
    return {
        "PATH": f"{venv_bin}{os.pathsep}{host_path}",
        "HOME": str(workdir),
        "HOSTNAME": hostname,
        "PYTHONUNBUFFERED": "1",
        "LANG": "C.UTF-8",
        # Programs of this project bind to this address instead of 0.0.0.0, so
        # several pods can listen on the same containerPort.
        "MAESTRO_BIND_HOST": ip,
    }


GPU_RESOURCE = "nvidia.com/gpu"


def gpu_env(container: Mapping[str, Any]) -> dict[str, str]:
    """GPUs as the device plugin gives them, as far as one machine can (pure): a container
    without `nvidia.com/gpu` limits sees none (CUDA_VISIBLE_DEVICES empty), so its trainer
    takes the CPU and gloo; one with them sees this machine's GPUs (the runner does not
    share them out among pods)."""
    limits = (container.get("resources") or {}).get("limits") or {}
    if str(limits.get(GPU_RESOURCE, "0")) not in ("0", ""):
        return {}
    return {"CUDA_VISIBLE_DEVICES": ""}


_ENV_FROM: tuple[tuple[str, SourceKind], ...] = (("configMapRef", "cm"), ("secretRef", "secret"))


def _envfrom_refs(src: Mapping[str, Any]) -> list[tuple[SourceRef, Mapping[str, Any]]]:
    return [
        (SourceRef(kind, src[key]["name"]), src[key]) for key, kind in _ENV_FROM if src.get(key)
    ]


def _key_ref(value_from: Mapping[str, Any]) -> tuple[SourceKind, Mapping[str, Any]] | None:
    """The kind and reference of a secretKeyRef or configMapKeyRef."""
    if "secretKeyRef" not in value_from and "configMapKeyRef" not in value_from:
        return None
    kind: SourceKind = "secret" if "secretKeyRef" in value_from else "cm"
    ref: Mapping[str, Any] = value_from.get("secretKeyRef") or value_from["configMapKeyRef"]
    return kind, ref


def _value_from(item: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The item's valueFrom, unless a literal value (even an empty one) wins."""
    if "value" in item or "valueFrom" not in item:
        return None
    value_from: Mapping[str, Any] = item["valueFrom"]
    return value_from


def referenced_sources(container: Mapping[str, Any]) -> list[SourceRef]:
    """The Secrets and ConfigMaps `container_env` will look up, each once, in order."""
    refs: list[SourceRef] = []
    for src in container.get("envFrom") or []:
        refs.extend(ref for ref, _ in _envfrom_refs(src))
    for item in container.get("env") or []:
        value_from = _value_from(item)
        # A fieldRef wins over key references in the same valueFrom.
        if value_from is not None and "fieldRef" not in value_from:
            key_ref = _key_ref(value_from)
            # One without a name fails in container_env without being read.
            if key_ref is not None and "name" in key_ref[1]:
                refs.append(SourceRef(key_ref[0], key_ref[1]["name"]))
    return list(dict.fromkeys(refs))


def container_env(
    base: Mapping[str, str],
    container: Mapping[str, Any],
    pod: Mapping[str, Any],
    sources: EnvSources,
) -> dict[str, str]:
    """The environment `container` of `pod` runs with. A reference that is not optional to
    a Secret or ConfigMap that could not be read raises SourceUnavailable, to a missing key
    KeyError; an optional one leaves its variables unset."""
    namespace = pod["metadata"]["namespace"]
    env = {**base, **gpu_env(container)}
    for src in container.get("envFrom") or []:
        prefix = src.get("prefix", "")
        for source, ref in _envfrom_refs(src):
            try:
                data = sources.lookup(source, namespace)
            except SourceUnavailable:
                if ref.get("optional"):
                    continue
                raise
            env.update({prefix + k: v for k, v in data.items()})
    for item in container.get("env") or []:
        name = item["name"]
        value_from = _value_from(item)
        if value_from is None:
            env[name] = expand(item.get("value", ""), env)
            continue
        key_ref = _key_ref(value_from)
        if "fieldRef" in value_from:
            env[name] = field_ref(pod, value_from["fieldRef"]["fieldPath"])
        elif key_ref is not None:
            kind, ref = key_ref
            try:
                source = SourceRef(kind, ref["name"])
                data = sources.lookup(source, namespace)
                if ref["key"] not in data:
                    raise KeyError(
                        f"{source.kind} {namespace}/{source.name} has no key {ref['key']!r}"
                    )
                env[name] = data[ref["key"]]
            except (SourceUnavailable, KeyError):
                if not ref.get("optional"):
                    raise
        elif "resourceFieldRef" in value_from:
            resources = container.get("resources") or {}
            kind, _, resource = value_from["resourceFieldRef"]["resource"].partition(".")
            env[name] = str((resources.get(kind) or {}).get(resource, "0"))
    return env
