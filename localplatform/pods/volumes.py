"""A local pod's volumes and its containers' mounts, as a kubelet and a container runtime
give them: each emptyDir is a folder of the pod's work dir, each projected ServiceAccount
token a file the runner writes there, and a container that mounts any of them runs in a
mount namespace of its own (`unshare --mount`) where they are bound at their mountPath.
So `/vault/secrets` or `/tmp` of one pod is not another pod's.

Other volume types (configMap, secret, persistentVolumeClaim, hostPath) are not made: a
container that mounts one sees the host's folder at that path, as before. Mounts are
read-write even when `readOnly` (the processes run as the runner's user anyway).

Neither is the API token the ServiceAccount admission plugin mounts at API_TOKEN_DIR: the
runner gives API access through KUBECONFIG instead (api.service_account_kubeconfig),
because Kopf and client libraries that find that token connect to the in-cluster address
kubernetes.default.svc, which did not resolve before the cluster DNS; it does in pods now
(pods.dns), but whether its ClusterIP reaches the API server through the runner's Service
proxy is not checked, so the platform keeps giving pods the API through KUBECONFIG."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# A projected token volume's token, asked of the API server: (audiences, expiration
# seconds) -> the token, bound to the pod.
TokenSource = Callable[[list[str], int], str]
# A ConfigMap of the pod's namespace: name -> its data.
ConfigMapSource = Callable[[str], Mapping[str, str]]


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    # A file bound over a file that exists (the pod's resolv.conf over /etc/resolv.conf),
    # rather than a folder made at its mountPath if need be.
    file: bool = False


API_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def volume_dirs(pod_spec: Mapping[str, Any], workdir: Path) -> dict[str, Path]:
    """Where each volume the runner makes lives (pure): <workdir>/volumes/<name>."""
    containers = [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]
    api_token = {
        m["name"]
        for c in containers
        for m in c.get("volumeMounts") or []
        if m["mountPath"].rstrip("/") == API_TOKEN_DIR
    }
    out = {}
    for volume in pod_spec.get("volumes") or []:
        if volume["name"] in api_token:
            continue
        if "emptyDir" in volume or "projected" in volume:
            out[volume["name"]] = workdir / "volumes" / volume["name"]
    return out


def projected_files(
    pod: Mapping[str, Any], volume: Mapping[str, Any], token: TokenSource, cms: ConfigMapSource
) -> dict[str, str]:
    """A projected volume's files (relative path -> content) from its serviceAccountToken,
    configMap and downwardAPI (metadata.namespace, metadata.name) sources, as the one the
    ServiceAccount admission plugin adds (token, ca.crt, namespace)."""
    files: dict[str, str] = {}
    for source in (volume.get("projected") or {}).get("sources") or []:
        if "serviceAccountToken" in source:
            sat = source["serviceAccountToken"]
            audiences = [sat["audience"]] if sat.get("audience") else []
            files[sat["path"]] = token(audiences, int(sat.get("expirationSeconds", 3600)))
        elif "configMap" in source:
            data = cms(source["configMap"]["name"])
            items = source["configMap"].get("items") or [{"key": k, "path": k} for k in data]
            files.update({i["path"]: data[i["key"]] for i in items if i["key"] in data})
        elif "downwardAPI" in source:
            meta = pod["metadata"]
            for item in source["downwardAPI"].get("items") or []:
                field = (item.get("fieldRef") or {}).get("fieldPath", "")
                if field.startswith("metadata.") and field[9:] in ("namespace", "name"):
                    files[item["path"]] = str(meta[field[9:]])
    return files


def make_volumes(
    pod: Mapping[str, Any], workdir: Path, token: TokenSource, cms: ConfigMapSource
) -> dict[str, Path]:
    """Create the volumes of volume_dirs, each projected one with its files."""
    dirs = volume_dirs(pod["spec"], workdir)
    for volume in pod["spec"].get("volumes") or []:
        where = dirs.get(volume["name"])
        if where is None:
            continue
        where.mkdir(parents=True, exist_ok=True)
        for relative, content in projected_files(pod, volume, token, cms).items():
            path = where / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            path.chmod(0o600)
    return dirs


def mounts(
    container: Mapping[str, Any], volumes: Mapping[str, Path], keep: Path | None = None
) -> list[Mount]:
    """The container's mounts of volumes the runner made, in its order (pure). A mount that
    would hide `keep` (the pod's work dir, with the files the runner gives the process) is
    left out: with the platform's state under /tmp, a pod's /tmp stays the host's."""
    return [
        Mount(volumes[m["name"]], m["mountPath"])
        for m in container.get("volumeMounts") or []
        if m["name"] in volumes and not (keep and keep.is_relative_to(m["mountPath"]))
    ]


def in_mount_namespace(argv: Sequence[str], planned: Sequence[Mount]) -> list[str]:
    """`argv` started in a mount namespace of its own with `planned` bound (pure). unshare
    execs the shell, which execs `argv`: the container's process keeps the pid Popen got,
    so signals and the process group work as before."""
    if not planned:
        return list(argv)
    steps = [
        ("" if m.file else f"mkdir -p {shlex.quote(m.target)} && ")
        + f"mount --bind {shlex.quote(str(m.source))} {shlex.quote(m.target)}"
        for m in planned
    ]
    script = " && ".join([*steps, 'exec "$@"'])
    return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh", *argv]
