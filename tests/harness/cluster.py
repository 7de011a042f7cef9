"""The local Kubernetes control plane: etcd, kube-apiserver (TLS, RBAC, admission),
kube-controller-manager, kube-scheduler, kwok for simulated nodes, and the pod
runner for the project's own pods. `python -m tests.harness.cluster up|down|status`."""

from __future__ import annotations

import argparse
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.harness.pki import Pki, ensure_pki
from tests.harness.procs import ProcessTable

REPO = Path(__file__).resolve().parents[2]
BINARIES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
)
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "pod-runner",
)
NODE_NAMES = ("kwok-node-0", "kwok-node-1")
POD_RUNNER_LABEL = "maestro.dev/local-run"


# kwok simulates every pod except the project's own, which the pod runner really runs.
KWOK_CONFIG = f"""apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokConfiguration
options:
  manageAllNodes: false
  manageNodesWithAnnotationSelector: kwok.x-k8s.io/node=fake
  disregardStatusWithLabelSelector: {POD_RUNNER_LABEL}=true
  cidr: 10.245.0.1/16
  nodeIP: 10.245.0.1
  serverAddress: 127.0.0.1:10247
"""


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


def _kubeconfig(path: Path, server: str, ca: Path, cert: Path, key: Path, user: str) -> None:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: maestro-local
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {user}
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: maestro-local
  context:
    cluster: maestro-local
    user: {user}
current-context: maestro-local
"""
    )
    path.chmod(0o600)


def missing_binaries(cfg: ClusterConfig) -> list[str]:
    return [b for b in BINARIES if not (cfg.bin / b).is_file()]


def _healthy(url: str, ca: Path | None, timeout: float = 1.0) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def _wait(what: str, check: object, timeout: float, cfg: ClusterConfig, log: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        if cfg.processes().pid(log) is None:
            raise ClusterError(
                f"{what} exited during start-up; its log ends:\n{cfg.processes().tail(log)}"
            )
        time.sleep(0.2)
    raise ClusterError(
        f"{what} not ready after {timeout:.0f}s; its log ends:\n{cfg.processes().tail(log)}"
    )


def run_kubectl(
    kubectl_bin: Path,
    kubeconfig: Path,
    *args: str,
    input: str | None = None,
    check: bool = True,
    error: type[Exception] | None = None,
) -> subprocess.CompletedProcess[str]:
    """The real kubectl against `kubeconfig`; a failure raises `error` with its stderr."""
    proc = subprocess.run(
        [str(kubectl_bin), "--kubeconfig", str(kubeconfig), *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check and proc.returncode != 0:
        raise (error or ClusterError)(
            f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr.strip()}"
        )
    return proc


def kubectl(
    cfg: ClusterConfig, *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return run_kubectl(cfg.bin / "kubectl", cfg.kubeconfig, *args, input=input, check=check)


def is_up(cfg: ClusterConfig) -> bool:
    pki_ca = cfg.state / "pki" / "ca.crt"
    return (
        cfg.kubeconfig.exists()
        and pki_ca.exists()
        and _healthy(f"{cfg.server}/readyz", pki_ca)
        and all(cfg.processes().pid(c) is not None for c in COMPONENTS)
    )


def _node_manifest(name: str) -> str:
    return f"""apiVersion: v1
kind: Node
metadata:
  name: {name}
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    type: kwok
    kubernetes.io/hostname: {name}
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    node-role.kubernetes.io/agent: ""
status:
  allocatable: {{cpu: "32", memory: 256Gi, pods: "110"}}
  capacity: {{cpu: "32", memory: 256Gi, pods: "110"}}
  nodeInfo:
    architecture: amd64
    kubeletVersion: fake
    kubeProxyVersion: fake
    operatingSystem: linux
---
"""


def up(cfg: ClusterConfig, *, install_project_crds: bool = True) -> float:
    """Start whatever is not running; return the seconds it took."""
    started = time.monotonic()
    missing = missing_binaries(cfg)
    if missing:
        raise ClusterError(
            f"missing control-plane binaries in {cfg.bin}: {', '.join(missing)}; "
            "build them with `make binaries` (first build takes a while, see README)"
        )
    procs = cfg.processes()
    pki = ensure_pki(cfg.state / "pki", cfg.service_ip)
    _kubeconfig(
        cfg.kubeconfig, cfg.server, pki.ca.cert, pki.admin.cert, pki.admin.key, "maestro-admin"
    )
    cm_kc = cfg.state / "controller-manager.kubeconfig"
    sched_kc = cfg.state / "scheduler.kubeconfig"
    _kubeconfig(
        cm_kc,
        cfg.server,
        pki.ca.cert,
        pki.controller_manager.cert,
        pki.controller_manager.key,
        "kcm",
    )
    _kubeconfig(
        sched_kc, cfg.server, pki.ca.cert, pki.scheduler.cert, pki.scheduler.key, "scheduler"
    )

    etcd_url = f"http://127.0.0.1:{cfg.etcd_port}"
    procs.start(
        "etcd",
        [
            str(cfg.bin / "etcd"),
            "--name=maestro",
            f"--data-dir={cfg.state / 'etcd'}",
            f"--listen-client-urls={etcd_url}",
            f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://127.0.0.1:{cfg.etcd_port + 1}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{cfg.etcd_port + 1}",
            f"--initial-cluster=maestro=http://127.0.0.1:{cfg.etcd_port + 1}",
            # Throwaway test data: durability is not worth an fsync per write.
            "--unsafe-no-fsync",
            "--quota-backend-bytes=4294967296",
            "--log-level=warn",
        ],
    )
    _wait("etcd", lambda: _healthy(f"{etcd_url}/health", None), 30, cfg, "etcd")

    _start_apiserver(cfg, pki, etcd_url)
    _wait(
        "kube-apiserver",
        lambda: _healthy(f"{cfg.server}/readyz", pki.ca.cert),
        60,
        cfg,
        "kube-apiserver",
    )

    procs.start(
        "kube-controller-manager",
        [
            str(cfg.bin / "kube-controller-manager"),
            f"--kubeconfig={cm_kc}",
            f"--authentication-kubeconfig={cm_kc}",
            f"--authorization-kubeconfig={cm_kc}",
            "--bind-address=127.0.0.1",
            "--secure-port=10257",
            "--leader-elect=false",
            f"--service-account-private-key-file={pki.service_account_key}",
            f"--root-ca-file={pki.ca.cert}",
            f"--cluster-signing-cert-file={pki.ca.cert}",
            f"--cluster-signing-key-file={pki.ca.key}",
            "--use-service-account-credentials=true",
            f"--service-cluster-ip-range={cfg.service_cidr}",
            "--controllers=*",
            # kwok nodes never run a kubelet; the faster HPA loop keeps autoscaling tests short.
            "--horizontal-pod-autoscaler-sync-period=5s",
            # kwok posts node status about once a minute, around the default 50 s grace
            # period: nodes flapped NotReady and the node lifecycle controller marked every
            # pod on them unready. kwok renews leases too (below); this is the safety margin.
            "--node-monitor-grace-period=2m",
            "--v=1",
        ],
    )
    procs.start(
        "kube-scheduler",
        [
            str(cfg.bin / "kube-scheduler"),
            f"--kubeconfig={sched_kc}",
            f"--authentication-kubeconfig={sched_kc}",
            f"--authorization-kubeconfig={sched_kc}",
            "--bind-address=127.0.0.1",
            "--secure-port=10259",
            "--leader-elect=false",
            "--v=1",
        ],
    )
    kwok_config = cfg.state / "kwok.yaml"
    kwok_config.write_text(KWOK_CONFIG)
    procs.start(
        "kwok",
        [
            str(cfg.bin / "kwok"),
            f"--kubeconfig={cfg.kubeconfig}",
            f"--config={kwok_config}",
            # Node leases, renewed well within their duration: the node lifecycle
            # controller's heartbeat for each simulated node.
            "--node-lease-duration-seconds=40",
        ],
        env={**os.environ, "KWOK_WORKDIR": str(cfg.state / "kwok")},
    )
    kubectl(
        cfg,
        "apply",
        "--server-side",
        "--field-manager=maestro-local",
        "-f",
        "-",
        input="".join(_node_manifest(n) for n in NODE_NAMES),
    )
    procs.start(
        "pod-runner",
        [
            sys.executable,
            "-m",
            "tests.harness.podrunner",
            f"--kubeconfig={cfg.kubeconfig}",
            f"--state={cfg.pods}",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )

    install_crds(cfg, project=install_project_crds)
    wait_nodes_ready(cfg, timeout=60)
    wait_default_serviceaccount(cfg)
    return time.monotonic() - started


def _start_apiserver(cfg: ClusterConfig, pki: Pki, etcd_url: str) -> None:
    cfg.processes().start(
        "kube-apiserver",
        [
            str(cfg.bin / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={cfg.apiserver_port}",
            f"--tls-cert-file={pki.apiserver.cert}",
            f"--tls-private-key-file={pki.apiserver.key}",
            f"--client-ca-file={pki.ca.cert}",
            f"--cert-dir={cfg.state / 'apiserver-certs'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki.service_account_pub}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--service-cluster-ip-range={cfg.service_cidr}",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ],
    )


def install_crds(cfg: ClusterConfig, *, project: bool = True) -> None:
    """Third-party CRDs (Kubeflow, Istio, Prometheus Operator) from .maestro/crds, then ours."""
    if not cfg.upstream_crds.is_dir() or not any(cfg.upstream_crds.glob("*.yaml")):
        raise ClusterError(
            f"upstream CRDs missing in {cfg.upstream_crds}; fetch them with `make upstream-crds`"
        )
    args = ["apply", "--server-side", "--force-conflicts", "--field-manager=maestro-local"]
    kubectl(cfg, *args, "-f", str(cfg.upstream_crds))
    if project:
        ours = REPO / "manifests" / "crds"
        if not (ours / "kustomization.yaml").exists():
            raise ClusterError(f"{ours} is missing its CRDs; generate them with `make manifests`")
        kubectl(cfg, *args, "-k", str(ours))
    kubectl(cfg, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")


def wait_nodes_ready(cfg: ClusterConfig, timeout: float) -> None:
    proc = kubectl(
        cfg,
        "wait",
        "--for=condition=Ready",
        f"--timeout={int(timeout)}s",
        *(f"node/{n}" for n in NODE_NAMES),
        check=False,
    )
    if proc.returncode != 0:
        raise ClusterError(
            f"kwok nodes not Ready: {proc.stderr.strip()}\n"
            f"kwok log:\n{cfg.processes().tail('kwok')}"
        )


def wait_default_serviceaccount(cfg: ClusterConfig, timeout: float = 30) -> None:
    """Pods are refused until the service-account controller made `default`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (
            kubectl(
                cfg, "get", "serviceaccount", "default", "-n", "default", check=False
            ).returncode
            == 0
        ):
            return
        time.sleep(0.3)
    raise ClusterError(
        "the default ServiceAccount never appeared; is kube-controller-manager running? "
        f"its log ends:\n{cfg.processes().tail('kube-controller-manager')}"
    )


def down(cfg: ClusterConfig, *, wipe: bool = False) -> None:
    procs = cfg.processes()
    for name in reversed(COMPONENTS):
        procs.stop(name)
    if wipe:
        subprocess.run(
            [
                "rm",
                "-rf",
                str(cfg.state / "etcd"),
                str(cfg.pods),
                str(cfg.state / "kwok"),
            ],
            check=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.cluster",
        description="Start, stop or inspect the local Kubernetes control plane (etcd, "
        "kube-apiserver, controller-manager, scheduler, kwok nodes and the local pod runner).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up_p = sub.add_parser("up", help="start the control plane; reuses whatever is already running")
    up_p.add_argument(
        "--no-project-crds", action="store_true", help="install only third-party CRDs"
    )
    down_p = sub.add_parser("down", help="stop every process of the control plane")
    down_p.add_argument(
        "--wipe", action="store_true", help="also delete etcd data (a fresh cluster next time)"
    )
    sub.add_parser("status", help="print which components run")
    args = parser.parse_args(argv)
    cfg = ClusterConfig()
    try:
        if args.command == "up":
            took = up(cfg, install_project_crds=not args.no_project_crds)
            print(
                f"local cluster up in {took:.1f}s; kubeconfig: {cfg.kubeconfig.relative_to(REPO)}"
            )
            print(kubectl(cfg, "get", "nodes").stdout, end="")
        elif args.command == "down":
            down(cfg, wipe=args.wipe)
            print("local cluster stopped")
        else:
            procs = cfg.processes()
            for name in COMPONENTS:
                pid = procs.pid(name)
                print(f"{name:26} {'running pid ' + str(pid) if pid else 'stopped'}")
            return 0 if is_up(cfg) else 1
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
