"""The local Kubernetes control plane: etcd, kube-apiserver (TLS, RBAC, admission, the
aggregation layer), kube-controller-manager, kube-scheduler, kwok for simulated nodes,
metrics-server (metrics.k8s.io from kwok's kubelet resource metrics), CoreDNS (the cluster
DNS), the pod runner for the project's own pods, Kubeflow's training operator, Vault, the
object store (SeaweedFS, S3 API: `objectstore`) and Jaeger (traces: `jaeger`).
`python -m maestro.localplatform.cluster up|down|status`.

Starting, checking and stopping them lives here; their command lines are in `components`,
`cluster_dns`, `training_operator` and `jaeger`, the configuration in `clusterconfig` and kubectl in
`kubectl`. The names tests and tools use (ClusterConfig, ClusterError, REPO, kubectl, ...)
are also importable from here."""

from __future__ import annotations

import argparse
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from maestro.localplatform import jaeger, objectstore, vault
from maestro.localplatform.cluster_dns import start_cluster_dns
from maestro.localplatform.clusterconfig import (
    NODE_NAMES,
    POD_RUNNER_LABEL,
    REPO,
    ClusterConfig,
    ClusterError,
    pod_workdir,
)
from maestro.localplatform.components import (
    BINARIES,
    COMPONENTS,
    apiserver_argv,
    controller_manager_argv,
    etcd_argv,
    etcd_url,
    kwok_argv,
    kwok_config,
    metrics_apiservice,
    metrics_server_argv,
    node_manifest,
    node_status_patch,
    pod_runner_argv,
    scheduler_argv,
    write_audit_policy,
    write_kubeconfig,
)
from maestro.localplatform.kubectl import apply_manifests, kubectl, run_kubectl
from maestro.localplatform.pki import Pki, ensure_pki
from maestro.localplatform.procs import POD_PROCESS
from maestro.localplatform.training_operator import (
    start_training_operator,
    sync_training_operator_certs,
)

__all__ = [
    "COMPONENTS",
    "NODE_NAMES",
    "POD_RUNNER_LABEL",
    "REPO",
    "ClusterConfig",
    "ClusterError",
    "down",
    "install_crds",
    "is_up",
    "kubectl",
    "missing_binaries",
    "pod_workdir",
    "run_kubectl",
    "up",
    "wait_default_serviceaccount",
    "wait_nodes_ready",
]


def missing_binaries(cfg: ClusterConfig) -> list[str]:
    return [b for b in BINARIES if not (cfg.bin / b).is_file()]


def _healthy(url: str, ca: Path | None, timeout: float = 1.0) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=ctx) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def _wait(
    what: str, check: Callable[[], bool], timeout: float, cfg: ClusterConfig, log: str
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if cfg.processes().pid(log) is None:
            raise ClusterError(
                f"{what} exited during start-up; its log ends:\n{cfg.processes().tail(log)}"
            )
        time.sleep(0.2)
    raise ClusterError(
        f"{what} not ready after {timeout:.0f}s; its log ends:\n{cfg.processes().tail(log)}"
    )


def is_up(cfg: ClusterConfig) -> bool:
    pki_ca = cfg.state / "pki" / "ca.crt"
    return (
        cfg.kubeconfig.exists()
        and pki_ca.exists()
        and _healthy(f"{cfg.server}/readyz", pki_ca)
        and all(cfg.processes().pid(c) is not None for c in (*COMPONENTS, jaeger.PROCESS))
    )


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
    write_kubeconfig(
        cfg.kubeconfig, cfg.server, pki.ca.cert, pki.admin.cert, pki.admin.key, "maestro-admin"
    )
    cm_kc = cfg.state / "controller-manager.kubeconfig"
    sched_kc = cfg.state / "scheduler.kubeconfig"
    write_kubeconfig(
        cm_kc,
        cfg.server,
        pki.ca.cert,
        pki.controller_manager.cert,
        pki.controller_manager.key,
        "kcm",
    )
    write_kubeconfig(
        sched_kc, cfg.server, pki.ca.cert, pki.scheduler.cert, pki.scheduler.key, "scheduler"
    )

    # The object store starts meanwhile; `objectstore.up` below waits for it.
    objectstore.start(objectstore.LocalObjectStore(cfg))
    procs.start("etcd", etcd_argv(cfg))
    _wait("etcd", lambda: _healthy(f"{etcd_url(cfg)}/health", None), 30, cfg, "etcd")

    write_audit_policy(cfg)
    _start_apiserver(cfg, pki)

    procs.start("kube-controller-manager", controller_manager_argv(cfg, pki, cm_kc))
    procs.start("kube-scheduler", scheduler_argv(cfg, sched_kc))
    kwok_yaml = cfg.state / "kwok.yaml"
    kwok_yaml.write_text(kwok_config(cfg))
    procs.start(
        "kwok",
        kwok_argv(cfg, kwok_yaml),
        env={**os.environ, "KWOK_WORKDIR": str(cfg.state / "kwok")},
    )
    # metrics.k8s.io (kubectl top, the HPA's CPU and memory targets) from kwok's kubelet
    # resource metrics; its first figures come two scrapes (20 s) after a pod's usage.
    procs.start("metrics-server", metrics_server_argv(cfg))
    start_cluster_dns(cfg)
    apply_manifests(cfg, "".join(node_manifest(n, cfg) for n in NODE_NAMES), force=False)
    # Apply leaves the status of a node that exists alone; the capacity may have changed.
    patch = node_status_patch(cfg)
    for node in NODE_NAMES:
        kubectl(cfg, "patch", "node", node, "--subresource=status", "--type=merge", "-p", patch)
    # The platform's binaries on the pods' PATH: the Vault Agent containers run `vault`.
    path = f"{cfg.bin.resolve()}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
    procs.start(
        "pod-runner",
        pod_runner_argv(cfg),
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "PATH": path},
    )

    install_crds(cfg, project=install_project_crds)
    apply_manifests(cfg, metrics_apiservice(cfg), force=False)
    start_training_operator(cfg)
    _wait(
        "CoreDNS",
        lambda: _healthy(f"http://127.0.0.1:{cfg.dns_ready_port}/ready", None),
        30,
        cfg,
        "coredns",
    )
    wait_training_operator(cfg)
    wait_nodes_ready(cfg, timeout=60)
    wait_default_serviceaccount(cfg)
    vault.up(cfg, pki)
    objectstore.up(cfg).ensure_secret("default")
    jaeger.up(cfg)
    return time.monotonic() - started


def wait_training_operator(cfg: ClusterConfig, timeout: float = 90) -> None:
    """Until its certificates are in place, the CA injected into its webhook configuration
    and its controllers started (its /readyz)."""
    synced = False

    def ready() -> bool:
        nonlocal synced
        synced = synced or sync_training_operator_certs(cfg)
        health = f"http://127.0.0.1:{cfg.training_operator_health_port}/readyz"
        return synced and _healthy(health, None)

    _wait("the training operator", ready, timeout, cfg, "training-operator")


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


def restart_apiserver(cfg: ClusterConfig, down_for: float) -> None:
    """Stop kube-apiserver, leave it down `down_for` seconds, start it again and wait until
    it is ready: what an upgrade or a crash of the control plane does to clients (the
    fault tests' API outage). etcd keeps the state."""
    cfg.processes().stop("kube-apiserver")
    time.sleep(down_for)
    _start_apiserver(cfg, ensure_pki(cfg.state / "pki", cfg.service_ip))
    _wait_controllers_resynced(cfg)


def _wait_controllers_resynced(cfg: ClusterConfig, timeout: float = 90) -> None:
    """Ready is not enough after a restart: the controllers' watches reconnect with their
    own back-off, and until then a new namespace gets no default ServiceAccount (so its
    pods are refused). A probe namespace's ServiceAccount shows they are back."""
    probe = f"restart-probe-{os.getpid()}-{int(time.time())}"
    kubectl(cfg, "create", "namespace", probe)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = kubectl(cfg, "get", "serviceaccount", "default", "-n", probe, check=False)
            if found.returncode == 0:
                return
            time.sleep(0.5)
        raise ClusterError(
            f"no default ServiceAccount in a new namespace {timeout:.0f} s after kube-apiserver"
            f" restarted; kube-controller-manager's log ends:\n"
            f"{cfg.processes().tail('kube-controller-manager')}"
        )
    finally:
        kubectl(cfg, "delete", "namespace", probe, "--wait=false", check=False)


def _start_apiserver(cfg: ClusterConfig, pki: Pki) -> None:
    cfg.processes().start("kube-apiserver", apiserver_argv(cfg, pki))
    _wait(
        "kube-apiserver",
        lambda: _healthy(f"{cfg.server}/readyz", pki.ca.cert),
        60,
        cfg,
        "kube-apiserver",
    )


def down(cfg: ClusterConfig, *, wipe: bool = False) -> list[str]:
    """Stop the components in reverse order (the pod runner first, which stops its pods),
    then kill whatever process of theirs or of any pod is left: every process the platform
    starts carries its state dir in its environment (procs.MARKER), pod processes whose
    runner died and the processes they started too. Returns what could not be killed."""
    procs = cfg.processes()
    for name in reversed(COMPONENTS):
        procs.stop(name)
    # After the pods, whose last spans it receives.
    jaeger.down(cfg)
    left = procs.sweep((*COMPONENTS, jaeger.PROCESS, POD_PROCESS))
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
    return [str(p) for p in left]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maestro.localplatform.cluster",
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
            left = down(cfg, wipe=args.wipe)
            if left:
                print("processes that would not die:\n" + "\n".join(left), file=sys.stderr)
                return 1
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
