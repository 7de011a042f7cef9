"""The operator under `make bench-operator`: `maestro operator --standalone` as a process
serving one namespace, with its metrics endpoint read for API writes and reconciles, and
the watches that time when each custom resource's children appear."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from maestro.localplatform import cluster
from maestro.localplatform.components import node_manifest
from maestro.localplatform.wait import eventually
from maestro.monitoring import metric_names as names
from tests.cluster.operator_process import free_port

MAESTRO = Path(sys.executable).parent / "maestro"
# Settings of the local overlay that hand pods to the local pod runner: left out, so kwok
# alone fakes the bench's serving and trainer pods (1,000 real servers cannot run here).
POD_RUNNER_SETTINGS = ("MAESTRO_SERVING_POD_LABELS", "MAESTRO_TRAINER_POD_LABELS")
BENCH_NODE = "bench-operator-node"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used (/proc/<pid>/stat: utime, stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def platform_cpu(cfg: cluster.ClusterConfig) -> dict[str, float]:
    """CPU seconds used so far by each component of the local control plane."""
    procs = cfg.processes()
    found = {}
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
        pid = procs.pid(name)
        if pid is not None:
            found[name] = cpu_seconds(pid)
    return found


@dataclass
class OperatorProcess:
    """One `maestro operator` process; `start` again after `stop` for a restart."""

    cfg: cluster.ClusterConfig
    namespace: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    health_port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)

    def start(self) -> None:
        self.started = time.monotonic()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(MAESTRO), "operator", "--standalone", "--namespace", self.namespace,
                 "--liveness", f"http://127.0.0.1:{self.health_port}/healthz"],
                env={**os.environ, **self.env, "KUBECONFIG": str(self.cfg.kubeconfig),
                     "MAESTRO_METRICS_LISTEN": f"127.0.0.1:{self.metrics_port}"},
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        eventually(self.healthy, timeout=90, what="the operator's liveness endpoint")

    def healthy(self) -> bool:
        assert self.process is not None and self.process.poll() is None, "operator exited"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=1):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def rss_mb(self) -> float:
        assert self.process is not None
        return rss_mb(self.process.pid)

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return cpu_seconds(self.process.pid)

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as rsp:
            text = rsp.read().decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def writes(self) -> dict[str, float]:
        """API writes since the process started, per `kind verb`."""
        return {
            f"{dict(labels)['kind']} {dict(labels)['verb']}": value
            for (name, labels), value in self.samples().items()
            if name == f"{names.OPERATOR_API_WRITES}_total"
        }

    def reconciles(self, kind: str) -> float:
        key = (f"{names.OPERATOR_RECONCILE_SECONDS}_count", (("kind", kind),))
        return self.samples().get(key, 0.0)

    def quiet(self, seconds: float, timeout: float = 300) -> None:
        """Wait until the operator sent no write for `seconds`."""
        last, since = self.writes(), time.monotonic()
        deadline = since + timeout
        while time.monotonic() - since < seconds:
            assert time.monotonic() < deadline, f"the operator kept writing: {last}"
            time.sleep(0.5)
            now = self.writes()
            if now != last:
                last, since = now, time.monotonic()


def diff(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0)}


def kopf_events(cfg: cluster.ClusterConfig, namespace: str) -> int:
    """Kubernetes Events the operator posted (through Kopf) in the namespace, repeats
    counted: writes too, which the operator's counter leaves out."""
    items = json.loads(cluster.kubectl(cfg, "get", "events", "-n", namespace, "-o", "json").stdout)
    return sum(
        int(e.get("count") or 1)
        for e in items["items"]
        if (e.get("source") or {}).get("component") == "kopf"
        or e.get("reportingComponent") == "kopf"
    )


class ChildWatch:
    """Watches resources in a namespace (one `kubectl get -w` per resource) and notes when
    each object owned by a `kind` was first seen, per owner."""

    def __init__(self, cfg: cluster.ClusterConfig, namespace: str, kind: str) -> None:
        self.cfg, self.namespace, self.kind = cfg, namespace, kind
        self.first_seen: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen[str]] = []

    @contextmanager
    def watching(self, resources: list[str]) -> Iterator[ChildWatch]:
        template = (
            # Tabs would become spaces (kubectl's watch output goes through a tabwriter).
            '{{.metadata.name}}{{" "}}{{range .metadata.ownerReferences}}{{.kind}}/{{.name}},'
            '{{end}}{{"\\n"}}'
        )
        for resource in resources:
            proc = subprocess.Popen(
                [str(self.cfg.bin / "kubectl"), f"--kubeconfig={self.cfg.kubeconfig}", "get",
                 resource, "-n", self.namespace, "-w", "-o", f"go-template={template}"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
            )  # fmt: skip
            self._procs.append(proc)
            threading.Thread(target=self._read, args=(resource, proc), daemon=True).start()
        try:
            yield self
        finally:
            for proc in self._procs:
                proc.terminate()
                proc.wait()

    def _read(self, resource: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen = time.monotonic()
            name, _, owners = line.strip().partition(" ")
            for owner in owners.split(","):
                kind, _, owner_name = owner.partition("/")
                if kind == self.kind:
                    with self._lock:
                        children = self.first_seen.setdefault(owner_name, {})
                        children.setdefault(f"{resource}/{name}", seen)

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {owner: dict(children) for owner, children in self.first_seen.items()}


@contextmanager
def bench_node(cfg: cluster.ClusterConfig, pods: int) -> Iterator[str]:
    """A kwok node of the bench's own with room for `pods` pods at their requests (the two
    platform nodes hold 110 pods and one CPU each); deleted after."""
    big = replace(cfg, node_cpu=str(pods), node_memory=f"{pods}Gi", node_pods=str(pods + 10))
    cluster.kubectl(cfg, "apply", "-f", "-", input=node_manifest(BENCH_NODE, big))
    resources = {"cpu": big.node_cpu, "memory": big.node_memory, "pods": big.node_pods}
    status = {"status": {"capacity": resources, "allocatable": resources}}
    cluster.kubectl(cfg, "patch", "node", BENCH_NODE, "--subresource=status", "--type=merge",
                    "-p", json.dumps(status))  # fmt: skip
    try:
        yield BENCH_NODE
    finally:
        cluster.kubectl(cfg, "delete", "node", BENCH_NODE, "--ignore-not-found", check=False)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]
