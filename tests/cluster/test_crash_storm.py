"""`make down` leaves no process of the platform or of any pod behind, even after a crash
storm. The test tears a platform down, so it runs one of its own (own state dir and
ports, a pod address range of its own), beside the session's cluster, which it never
touches. On it run the operator, as `make demo` deploys it, and 50 ModelDeployments
whose serving pods cannot load their model: those the nodes' capacity admits crash-loop
(and their ModelDeployments say ModelLoadFailed), the rest stay Pending. Beside them, 10
pods ignore SIGTERM (as a server stuck retrying does) and have children. The pod runner
is SIGKILLed midway and a new one started, so the teardown also meets pods whose runner
died."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from maestro.localplatform import cluster, demo, platform
from maestro.localplatform.clusterconfig import ClusterConfig
from maestro.localplatform.procs import MARKER
from maestro.localplatform.wait import eventually

pytestmark = [pytest.mark.cluster, pytest.mark.fault]

MODEL_DEPLOYMENTS, STUCK = 50, 10
# MLflow is shared with the session's cluster: this operator registers no webhook there.
NO_WEBHOOK: dict[str, str | None] = dict.fromkeys(
    (
        "MAESTRO_REGISTRY_WEBHOOK_LISTEN",
        "MAESTRO_REGISTRY_WEBHOOK_URL",
        "MAESTRO_REGISTRY_WEBHOOK_SECRET",
    )
)
# Inside the 10.244.0.0/16 the session's runner hands out from the bottom up.
POD_CIDR = "10.244.240.0/20"
STUCK_SCRIPT = "trap '' TERM; sleep 600 & sleep 600 & wait"


def free_port(pair: bool = False) -> int:
    """A free loopback port; with `pair`, one whose successor is free too (etcd's peers)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not pair:
            return port
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue


@pytest.fixture
def own_platform(tmp_path: Path) -> Iterator[ClusterConfig]:
    main = ClusterConfig()
    root = tmp_path / ".maestro"
    root.mkdir()
    (root / "bin").symlink_to(main.bin)
    (root / "crds").mkdir()  # kubectl -f reads a folder, not a link to one
    for crd in main.upstream_crds.glob("*.yaml"):
        (root / "crds" / crd.name).symlink_to(crd)
    cfg = ClusterConfig(
        root=root,
        apiserver_port=free_port(),
        etcd_port=free_port(pair=True),
        controller_manager_port=free_port(),
        scheduler_port=free_port(),
        kwok_port=free_port(),
        metrics_server_port=free_port(),
        pod_cidr=POD_CIDR,
        # Its own cluster DNS (another address of the shared Service range) and training
        # operator, beside the main platform's.
        dns_ip="10.96.0.11",
        dns_health_port=free_port(),
        dns_ready_port=free_port(),
        training_operator_metrics_port=free_port(),
        training_operator_health_port=free_port(),
        training_operator_webhook_port=free_port(),
    )
    try:
        yield cfg
    finally:
        cluster.down(cfg)
        cfg.processes().sweep()


def deployment(name: str, replicas: int, script: str) -> dict[str, Any]:
    labels = {"app": name, "maestro.dev/local-run": "true"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 30,
                    "containers": [
                        {"name": "main", "image": "maestro", "command": ["sh", "-c", script]}
                    ],
                },
            },
        },
    }


def model_deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "mlops.maestro.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            # A path in the serving pod's filesystem: only the pod can find it missing.
            "model": {"uri": f"file:///models/{name}-not-there", "name": "storm"},
            "replicas": {"min": 1, "max": 1},
        },
    }


def left_behind(cfg: ClusterConfig) -> list[str]:
    """Live processes of this platform, found independently of the code under test: the
    mark in their environment, or this platform's folder on their command line."""
    mark, folder = f"{MARKER}={cfg.state}".encode(), str(cfg.root).encode()
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if stat.rsplit(b") ", 1)[-1][:1] in (b"Z", b"X") or int(pid) == os.getpid():
            continue
        if mark in environ or folder in cmdline:
            args = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{pid}: {args}")
    return found


def test_make_down_leaves_no_process_after_a_crash_storm(
    own_platform: ClusterConfig, mlflow_url: str
) -> None:
    cfg = own_platform
    cluster.up(cfg)
    platform.deploy_operator(cfg, env=NO_WEBHOOK)
    objs = [model_deployment(f"storm-{i:02d}") for i in range(MODEL_DEPLOYMENTS)]
    objs.append(deployment("stuck", STUCK, STUCK_SCRIPT))
    cluster.kubectl(
        cfg,
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}),
    )

    def items(kind: str) -> list[dict[str, Any]]:
        out = cluster.kubectl(cfg, "get", kind, "-n", "default", "-o", "json").stdout
        found: list[dict[str, Any]] = json.loads(out)["items"]
        return found

    seen: dict[str, int] = {}

    def storm() -> bool:
        crashed, pending, stuck = set(), 0, 0
        for pod in items("pods"):
            name, status = pod["metadata"]["name"], pod.get("status") or {}
            statuses = status.get("containerStatuses") or []
            if name.startswith("stuck"):
                stuck += any("running" in cs["state"] for cs in statuses)
            elif any(cs.get("lastState", {}).get("terminated") for cs in statuses):
                crashed.add(pod["metadata"]["labels"]["app.kubernetes.io/instance"])
            elif status.get("phase") == "Pending" and not pod["spec"].get("nodeName"):
                pending += 1
        load_failed = {
            md["metadata"]["name"]
            for md in items("modeldeployments")
            for c in (md.get("status") or {}).get("conditions") or []
            if c["type"] == "Ready" and c.get("reason") == "ModelLoadFailed"
        }
        seen.update(crashed=len(crashed), pending=pending, load_failed=len(load_failed))
        # Every serving pod either crash-loops (its ModelDeployment showing why) or waits
        # for capacity the nodes do not have.
        return (
            stuck == STUCK
            and len(crashed) > 0
            and crashed <= load_failed
            and len(crashed) + pending == MODEL_DEPLOYMENTS
        )

    eventually(
        storm,
        timeout=240,
        interval=2,
        what=f"a crash storm of {MODEL_DEPLOYMENTS} ModelDeployments",
    )
    print(f"storm: {seen}")

    def stuck_shells() -> int:
        return sum(STUCK_SCRIPT in p for p in left_behind(cfg))

    # The runner dies: its pods' processes live on, orphans; a new runner starts them again.
    runner = cfg.processes().pid("pod-runner")
    assert runner is not None
    os.kill(runner, signal.SIGKILL)
    cluster.up(cfg, install_project_crds=False)
    eventually(
        lambda: stuck_shells() == 2 * STUCK,
        timeout=120,
        interval=1,
        what="the stuck pods' orphans and their new processes",
    )
    assert len(left_behind(cfg)) >= 3 * 2 * STUCK + len(cluster.COMPONENTS)

    begun = time.monotonic()
    demo.down(cfg)
    took = time.monotonic() - begun
    assert left_behind(cfg) == []
    print(f"teardown after the storm took {took:.1f} s")
    assert took < 60
