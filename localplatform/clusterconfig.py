"""Where the local cluster keeps its files and which loopback ports it uses, the name of
each pod's work dir, and the error the local platform raises when it cannot start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maestro.localplatform.procs import ProcessTable

REPO = Path(__file__).resolve().parents[1]
# Pods with this label set to "true" are run by the pod runner; kwok leaves them alone.
POD_RUNNER_LABEL = "maestro.dev/local-run"


class ClusterError(RuntimeError):
    """The local control plane could not be started or reached; the message says why."""


@dataclass(frozen=True)
class ClusterConfig:
    """Where the local cluster keeps its files and which loopback ports it uses."""

    root: Path = REPO / ".maestro"
    apiserver_port: int = int(os.environ.get("MAESTRO_APISERVER_PORT", "6443"))
    etcd_port: int = int(os.environ.get("MAESTRO_ETCD_PORT", "12379"))
    service_cidr: str = "10.96.0.0/16"
    service_ip: str = "10.96.0.1"
    extra_crd_dirs: tuple[Path, ...] = field(default=())

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def state(self) -> Path:
        return self.root / "cluster"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def upstream_crds(self) -> Path:
        return self.root / "crds"

    @property
    def pods(self) -> Path:
        """The pod runner's work dirs: one per pod (pod_workdir), with a log per container."""
        return self.state / "pods"

    def pod_log(self, pod: Mapping[str, Any], container: str) -> Path:
        return self.pods / pod_workdir(pod["metadata"]) / f"{container}.log"

    def processes(self) -> ProcessTable:
        return ProcessTable(self.state / "run", self.root / "logs")


def pod_workdir(meta: Mapping[str, Any]) -> str:
    """The pod runner's folder name for a pod: unique across a name's successive pods."""
    return f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
