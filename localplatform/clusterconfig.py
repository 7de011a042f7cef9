"""Where the local cluster keeps its files, which loopback ports and pod addresses it uses
and what its nodes advertise, the name of each pod's work dir, and the error the local
platform raises when it cannot start."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maestro.localplatform import capacity
from maestro.localplatform.procs import ProcessTable

REPO = Path(__file__).resolve().parents[1]
# Pods with this label set to "true" are run by the pod runner; kwok leaves them alone.
POD_RUNNER_LABEL = "maestro.dev/local-run"
NODE_NAMES = ("kwok-node-0", "kwok-node-1")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


class ClusterError(RuntimeError):
    """The local control plane could not be started or reached; the message says why."""


@dataclass(frozen=True)
class ClusterConfig:
    """Where the local cluster keeps its files, which loopback ports and pod addresses it
    uses, and each node's capacity (see `capacity`: by default its share of this machine).
    Two platforms with different roots, ports and pod ranges run side by side."""

    root: Path = REPO / ".maestro"
    apiserver_port: int = int(os.environ.get("MAESTRO_APISERVER_PORT", "6443"))
    etcd_port: int = int(os.environ.get("MAESTRO_ETCD_PORT", "12379"))  # peers: the next one
    controller_manager_port: int = field(
        default_factory=lambda: _env_int("MAESTRO_CONTROLLER_MANAGER_PORT", 10257)
    )
    scheduler_port: int = field(default_factory=lambda: _env_int("MAESTRO_SCHEDULER_PORT", 10259))
    kwok_port: int = field(default_factory=lambda: _env_int("MAESTRO_KWOK_PORT", 10247))
    metrics_server_port: int = field(
        default_factory=lambda: _env_int("MAESTRO_METRICS_SERVER_PORT", 10251)
    )
    vault_port: int = field(default_factory=lambda: _env_int("MAESTRO_VAULT_PORT", 8200))
    vault_injector_port: int = field(
        default_factory=lambda: _env_int("MAESTRO_VAULT_INJECTOR_PORT", 8442)
    )
    # The object store's S3 API, and SeaweedFS's own servers behind it (each with a gRPC
    # port 10000 above: 18333, 19333, 19334, 19335).
    s3_port: int = field(default_factory=lambda: _env_int("MAESTRO_S3_PORT", 8333))
    objectstore_master_port: int = field(
        default_factory=lambda: _env_int("MAESTRO_OBJECTSTORE_MASTER_PORT", 9333)
    )
    objectstore_volume_port: int = field(
        default_factory=lambda: _env_int("MAESTRO_OBJECTSTORE_VOLUME_PORT", 9334)
    )
    objectstore_filer_port: int = field(
        default_factory=lambda: _env_int("MAESTRO_OBJECTSTORE_FILER_PORT", 9335)
    )
    service_cidr: str = "10.96.0.0/16"
    service_ip: str = "10.96.0.1"
    # The cluster DNS (CoreDNS): the ClusterIP of kube-system/kube-dns, as kubeadm gives it,
    # port 53 there (the Service range is routed to loopback); its health and readiness
    # endpoints on loopback.
    dns_ip: str = "10.96.0.10"
    cluster_domain: str = "cluster.local"
    dns_health_port: int = field(default_factory=lambda: _env_int("MAESTRO_DNS_HEALTH_PORT", 10260))
    dns_ready_port: int = field(default_factory=lambda: _env_int("MAESTRO_DNS_READY_PORT", 10261))
    # Kubeflow's training operator: metrics and health on loopback, its validating webhook
    # (which upstream's binary serves on every address) on this port.
    training_operator_metrics_port: int = field(
        default_factory=lambda: _env_int("MAESTRO_TRAINING_OPERATOR_METRICS_PORT", 10255)
    )
    training_operator_health_port: int = field(
        default_factory=lambda: _env_int("MAESTRO_TRAINING_OPERATOR_HEALTH_PORT", 10256)
    )
    training_operator_webhook_port: int = field(
        default_factory=lambda: _env_int("MAESTRO_TRAINING_OPERATOR_WEBHOOK_PORT", 9443)
    )
    # The pod runner's pod addresses, routed to loopback.
    pod_cidr: str = field(
        default_factory=lambda: os.environ.get("MAESTRO_POD_CIDR") or "10.244.0.0/16"
    )
    # Each node's capacity and allocatable (Kubernetes quantities).
    node_cpu: str = field(default_factory=lambda: capacity.node_cpu(len(NODE_NAMES)))
    node_memory: str = field(default_factory=lambda: capacity.node_memory(len(NODE_NAMES)))
    node_pods: str = field(default_factory=capacity.node_pods)
    extra_crd_dirs: tuple[Path, ...] = field(default=())

    def __post_init__(self) -> None:
        for name, value in (
            ("MAESTRO_NODE_CPU", self.node_cpu),
            ("MAESTRO_NODE_MEMORY", self.node_memory),
            ("MAESTRO_NODE_PODS", self.node_pods),
        ):
            if not capacity.is_quantity(value):
                raise ClusterError(
                    f"node capacity {value!r} ({name}) is not a Kubernetes quantity "
                    "such as 2, 1500m or 8Gi"
                )

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
