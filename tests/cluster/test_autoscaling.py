"""Autoscaling on the local platform (issue 18): metrics-server serves the real CPU and
memory of the pod runner's processes (measured by the runner, served by kwok's kubelet
resource metrics), so `kubectl top` and the HPA see what the processes really use."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from maestro.localplatform.cluster import ClusterConfig
from maestro.localplatform.wait import eventually
from tests.cluster.modeldeployments import ALIAS, API_VERSION, wait_status
from tests.cluster.objects import apply, get, items
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

LOCAL = {"maestro.dev/local-run": "true"}
IMAGE = "ghcr.io/maestro-ml/maestro:0.1.0"
MAX_REPLICAS = 3
# `make bench-autoscaling` names a file here; each scaling test appends its figures.
BENCH_OUT = "MAESTRO_BENCH_AUTOSCALING_OUT"


def pod(name: str, code: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": LOCAL},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "main", "image": IMAGE, "command": ["python", "-c", code]}],
        },
    }


def millicores(q: str) -> float:
    if q.endswith("n"):
        return float(q[:-1]) / 1e6
    if q.endswith("u"):
        return float(q[:-1]) / 1e3
    if q.endswith("m"):
        return float(q[:-1])
    return float(q) * 1000


def pod_metrics(cluster: Cluster, namespace: str) -> dict[str, dict[str, str]]:
    """Each pod's container `main` usage from metrics.k8s.io (what `kubectl top` reads)."""
    proc = cluster.kubectl(
        "get", "--raw", f"/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods", check=False
    )
    if proc.returncode != 0:
        return {}
    return {
        item["metadata"]["name"]: c["usage"]
        for item in json.loads(proc.stdout)["items"]
        for c in item["containers"]
        if c["name"] == "main"
    }


def test_metrics_api_is_available(cluster: Cluster) -> None:
    def available() -> bool:
        got = json.loads(
            cluster.kubectl("get", "apiservice", "v1beta1.metrics.k8s.io", "-o", "json").stdout
        )
        return any(
            c["type"] == "Available" and c["status"] == "True"
            for c in got.get("status", {}).get("conditions", [])
        )

    eventually(
        available,
        timeout=60,
        what="APIService v1beta1.metrics.k8s.io Available",
        why=lambda: (
            cluster.kubectl("get", "apiservice", "v1beta1.metrics.k8s.io", "-o", "yaml").stdout
        ),
    )


def test_kubectl_top_shows_the_real_cpu_of_local_pods(
    cluster: Cluster, plain_namespace: str
) -> None:
    """A busy loop reads about a core, an idle process a few millicores at most; memory is
    the processes' resident set. (Plain test workloads: no Pod Security enforcement.)"""
    namespace = plain_namespace
    ballast = "b = bytearray(64 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
    for obj in (
        pod("busy", ballast + "while True: pass\n"),
        pod("idle", "import time\nwhile True: time.sleep(1)\n"),
    ):
        obj["metadata"]["namespace"] = namespace
        cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))
    started = time.monotonic()

    def measured() -> dict[str, dict[str, str]] | None:
        got = pod_metrics(cluster, namespace)
        if {"busy", "idle"} <= set(got) and millicores(got["busy"]["cpu"]) > 500:
            return got
        return None

    got = eventually(
        measured,
        timeout=90,
        interval=2,
        what="metrics.k8s.io figures for busy (> 500m) and idle",
        why=lambda: cluster.kubectl("get", "pods", "-n", namespace, "-o", "yaml").stdout[-3000:],
    )
    took = time.monotonic() - started
    top = cluster.kubectl("top", "pods", "-n", namespace, "--containers").stdout
    print(f"\nfigures {took:.0f}s after the pods were created:\n{top}")
    assert millicores(got["idle"]["cpu"]) < 50, top
    busy_memory = int(got["busy"]["memory"].removesuffix("Ki")) * 1024
    assert busy_memory > 64 << 20, top


# ---- ModelDeployments scaling under load (the operator deployed in the cluster)


class Load:
    """Clients calling a ModelDeployment's Service (the pod runner's ClusterIP proxy, so
    new replicas take traffic as their endpoints turn ready); every answer is counted."""

    def __init__(
        self,
        url: str | list[str],
        rows: list[dict[str, Any]],
        clients: int,
        per_client_rps: float = 0,
    ) -> None:
        """`per_client_rps`: each client's pace (0: as fast as answers come). Several URLs
        take turns, so a list splits traffic by how often each appears in it (the way a
        mesh splits by weight)."""
        self.urls = [url] if isinstance(url, str) else url
        self.rows = rows
        self.pause = 1 / per_client_rps if per_client_rps else 0.0
        self.ok = 0
        self.failed: list[str] = []
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]

    def run(self) -> None:
        # A connection per request, as many users make: the Service proxy (like kube-proxy)
        # picks a pod per connection, so one kept-alive connection would pin one pod, and
        # a pod that never served a request has no request rate (the HPA then counts it
        # at the target when scaling down, and holds the replicas).
        no_keep_alive = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=10, limits=no_keep_alive) as http:
            i = 0
            while not self.stop.wait(self.pause):
                i += 1
                try:
                    answer = http.post(
                        f"{self.urls[i % len(self.urls)]}/invocations",
                        json={"dataframe_records": [self.rows[i % len(self.rows)]]},
                    )
                    if answer.status_code == 200:
                        self.ok += 1
                    else:
                        self.failed.append(f"{self.at()} {answer.status_code} {answer.text[:200]}")
                except httpx.HTTPError as err:
                    self.failed.append(f"{self.at()} {type(err).__name__}: {err}")

    def at(self) -> str:
        return f"@{time.monotonic() - self.started:.1f}s"

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=15)


def scaling_deployment(model: str, **autoscaling: Any) -> dict[str, Any]:
    """1 to 3 replicas; windows shortened through spec.autoscaling.behavior so scaling
    down follows a few seconds after the load stops."""
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "metadata": {"name": "md"},
        "spec": {
            "model": {"uri": f"models:/{model}@{ALIAS}"},
            "replicas": {"min": 1, "max": MAX_REPLICAS},
            "autoscaling": {
                "enabled": True,
                **autoscaling,
                "behavior": {
                    "scaleUp": {
                        "stabilizationWindow": "0s",
                        "maxPercent": 100,
                        "maxPods": 2,
                        "period": "15s",
                    },
                    "scaleDown": {
                        "stabilizationWindow": "15s",
                        "maxPercent": 100,
                        "maxPods": 3,
                        "period": "15s",
                    },
                },
            },
        },
    }


def hpa_status(cluster: Cluster, namespace: str) -> dict[str, Any]:
    hpas = items(cluster, namespace, "hpa", "mlops.maestro.dev/deployment=md")
    return (hpas[0].get("status") or {}) if hpas else {}


def ready_pods(
    cluster: Cluster, namespace: str, selector: str = "mlops.maestro.dev/deployment=md"
) -> int:
    return sum(
        1
        for p in items(cluster, namespace, "pods", selector)
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in p.get("status", {}).get("conditions", [])
        )
    )


def service_url(cluster: Cluster, namespace: str, name: str = "md") -> str:
    svc = get(cluster, namespace, "service", name)
    assert svc is not None, f"the ModelDeployment's Service {name} is missing"
    return f"http://{svc['spec']['clusterIP']}:80"


def answers(url: str, row: dict[str, Any]) -> bool:
    try:
        return httpx.post(f"{url}/invocations", json={"dataframe_records": [row]}).is_success
    except httpx.HTTPError:
        return False


def scale_up_and_down(
    cluster: Cluster,
    namespace: str,
    rows: list[dict[str, Any]],
    label: str,
    clients: int,
    per_client_rps: float = 0,
) -> dict[str, Any]:
    """Load until a second replica is Ready (and, for at most a minute more, until
    MAX_REPLICAS are), then a trickle of 2 requests a second while it scales back to one.
    Returns the times (seconds from load start, and from load stop) and the requests that
    failed in each phase; fails if any failed while replicas were added or removed."""
    wait_status(cluster, namespace, "md", "md Available", lambda s: s.get("phase") == "Available")
    eventually(lambda: ready_pods(cluster, namespace) == 1, timeout=60, what="one ready pod")
    url = service_url(cluster, namespace)
    # The pod runner's Service proxy follows EndpointSlices every second: until it has
    # the ready pod, a connection to the ClusterIP is closed at once.
    eventually(
        lambda: answers(url, rows[0]), timeout=30, what=f"an answer through the Service {url}"
    )
    figures: dict[str, Any] = {"label": label}
    with Load(url, rows, clients, per_client_rps) as load:
        started = time.monotonic()
        eventually(
            lambda: ready_pods(cluster, namespace) >= 2,
            timeout=180,
            interval=1,
            what=f"a second ready replica under load ({label})",
            why=lambda: (
                f"hpa: {hpa_status(cluster, namespace)}\nok={load.ok} "
                f"failed={len(load.failed)} {load.failed[:3]}"
            ),
        )
        figures["first_new_replica_ready_s"] = round(time.monotonic() - started, 1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and ready_pods(cluster, namespace) < MAX_REPLICAS:
            time.sleep(1)
        if ready_pods(cluster, namespace) >= MAX_REPLICAS:
            figures["max_replicas_ready_s"] = round(time.monotonic() - started, 1)
        figures["hpa_under_load"] = hpa_status(cluster, namespace).get("currentMetrics")
    figures["up_requests"] = load.ok + len(load.failed)
    figures["up_failed"] = len(load.failed)
    with Load(url, rows, 1, per_client_rps=2) as trickle:
        stopped = time.monotonic()
        eventually(
            lambda: (
                ready_pods(cluster, namespace) == 1
                and len(items(cluster, namespace, "pods", "mlops.maestro.dev/deployment=md")) == 1
            ),
            timeout=180,
            interval=1,
            what=f"back to one replica after the load stopped ({label})",
            why=lambda: f"hpa: {hpa_status(cluster, namespace)}",
        )
        figures["back_to_one_s"] = round(time.monotonic() - stopped, 1)
    figures["down_requests"] = trickle.ok + len(trickle.failed)
    figures["down_failed"] = len(trickle.failed)
    print(f"\n[{label}] {json.dumps(figures)}")
    if os.environ.get(BENCH_OUT):
        with open(os.environ[BENCH_OUT], "a") as out:
            out.write(json.dumps(figures) + "\n")
    assert not load.failed, (
        f"{len(load.failed)} requests failed scaling up (times from load start): "
        f"{load.failed[:5]} ... {load.failed[-5:]}"
    )
    # Nor while they are removed: a removed pod's preStop sleep keeps it answering while the
    # endpoint controller and the runner's Service proxy drop it, as on a real cluster.
    assert not trickle.failed, (
        f"{len(trickle.failed)} requests failed scaling down (times from load stop): "
        f"{trickle.failed[:5]}"
    )
    return figures


@pytest.mark.scale
def test_cpu_target_scales_up_under_load_and_back_down(
    deployed_operator: ClusterConfig,
    cluster: Cluster,
    namespace: str,
    registered: tuple[str, Any],
) -> None:
    """200 requests a second (paced: unpaced clients, about 540 a second, saw 3% of
    requests reset by the pod runner's Service proxy) take one replica to about 100% of
    its 250m request, 2.5 times the 40% target."""
    model, features = registered
    apply(cluster, namespace, scaling_deployment(model, targetCPUUtilization=40))
    scale_up_and_down(
        cluster,
        namespace,
        features.head(40).to_dict(orient="records"),
        "cpu",
        clients=4,
        per_client_rps=50,
    )


@pytest.mark.scale
def test_requests_per_second_target_scales_through_the_adapter(
    deployed_operator: ClusterConfig,
    cluster: Cluster,
    namespace: str,
    registered: tuple[str, Any],
    prometheus_url: str,
) -> None:
    model, features = registered
    # 20 requests a second in all, 4 times the per-replica target, at a CPU well under
    # the 100% target: only the request rate scales it.
    apply(
        cluster,
        namespace,
        scaling_deployment(model, targetCPUUtilization=100, targetRequestsPerSecond=5),
    )
    rows = features.head(40).to_dict(orient="records")
    wait_status(cluster, namespace, "md", "md Available", lambda s: s.get("phase") == "Available")
    url = service_url(cluster, namespace)
    # The custom metrics API reads the serving pod's request rate under traffic.
    with Load(url, rows, 1, per_client_rps=10):

        def rate() -> float | None:
            proc = cluster.kubectl(
                "get",
                "--raw",
                f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/pods/*/"
                "maestro_requests_per_second",
                check=False,
            )
            if proc.returncode != 0:
                return None
            values = [millicores(i["value"]) / 1000 for i in json.loads(proc.stdout)["items"]]
            return sum(values) if values and sum(values) > 1 else None

        got = eventually(rate, timeout=90, interval=2, what="maestro_requests_per_second > 1")
        print(f"\nmaestro_requests_per_second (custom.metrics.k8s.io): {got:.1f}")
    scale_up_and_down(cluster, namespace, rows, "rps", clients=2, per_client_rps=10)


# ---- A canary under load: the stable's floor holds while its HPA scales it up


def revision_ready(cluster: Cluster, namespace: str, revision: str) -> int:
    return ready_pods(cluster, namespace, f"mlops.maestro.dev/revision={revision}")


def hpa_floor(cluster: Cluster, namespace: str, revision: str) -> int | None:
    hpa = get(cluster, namespace, "hpa", f"md-{revision}")
    return int(hpa["spec"]["minReplicas"]) if hpa else None


class Watch:
    """A sample a second of the stable's and the canary's replicas, the stable HPA's
    floor (minReplicas, which the operator holds) and the rollout's weight."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.started = time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(1):
            status = (get(self.cluster, self.namespace, "modeldeployment", "md") or {}).get(
                "status"
            ) or {}
            stable = get(self.cluster, self.namespace, "deployment", "md-v1") or {}
            canary = get(self.cluster, self.namespace, "deployment", "md-v2") or {}
            self.samples.append(
                {
                    "t": round(time.monotonic() - self.started, 1),
                    "stable_ready": (stable.get("status") or {}).get("readyReplicas", 0),
                    "stable_wanted": (stable.get("spec") or {}).get("replicas"),
                    "stable_floor": hpa_floor(self.cluster, self.namespace, "v1"),
                    "canary_wanted": (canary.get("spec") or {}).get("replicas"),
                    "weight": status.get("canaryWeight"),
                    "phase": status.get("phase"),
                }
            )

    def __enter__(self) -> Watch:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


@pytest.mark.scale
def test_a_canary_at_10_percent_under_load_keeps_the_stable_floor_while_it_scales_up(
    deployed_operator: ClusterConfig,
    cluster: Cluster,
    namespace: str,
    registered: tuple[str, Any],
    mlflow_url: str,
) -> None:
    """The candidate holds 10% for the whole test (a 30-minute step); the load is split
    90/10 between the revisions' Services, as the mesh would. The stable's HPA scales it
    up; the operator raises its floor to what it runs, so once the load stops it does not
    scale back down while the canary could still be rolled back."""
    model, features = registered
    md = scaling_deployment(model, targetCPUUtilization=40)
    md["spec"]["strategy"] = {
        "type": "Canary",
        "canary": {
            "steps": [10, 100],
            "stepDuration": "30m",
            # Generous gates: the test is about replicas, not about the canary's verdict.
            "analysis": {
                "interval": "10s",
                "maxErrorRate": 0.2,
                "maxLatencyP95Ms": 20000,
                "minRequests": 1,
                "maxFailedChecks": 5,
            },
        },
    }
    apply(cluster, namespace, md)
    wait_status(
        cluster, namespace, "md", "md Available on v1", lambda s: s.get("phase") == "Available"
    )
    eventually(lambda: revision_ready(cluster, namespace, "v1") == 1, timeout=60, what="one v1 pod")
    MlflowClient(mlflow_url, mlflow_url).set_registered_model_alias(model, ALIAS, "2")
    wait_status(
        cluster,
        namespace,
        "md",
        "the canary v2 at 10%",
        lambda s: s.get("canaryRevision") == "v2" and s.get("canaryWeight") == 10,
        timeout=120,
    )
    stable, canary = (service_url(cluster, namespace, f"md-{r}") for r in ("v1", "v2"))
    rows = features.head(40).to_dict(orient="records")
    for url in (stable, canary):
        eventually(lambda u=url: answers(u, rows[0]), timeout=30, what=f"an answer from {url}")
    with Watch(cluster, namespace) as watch:
        # 200 requests a second, as in the CPU test: 180 to the stable, 20 to the canary.
        with Load([canary] + [stable] * 9, rows, clients=4, per_client_rps=50) as load:
            started = time.monotonic()
            eventually(
                lambda: revision_ready(cluster, namespace, "v1") >= 2,
                timeout=180,
                interval=1,
                what="a second ready stable replica under load",
                why=lambda: (
                    f"hpa: {(get(cluster, namespace, 'hpa', 'md-v1') or {}).get('status')}\n"
                    f"{watch.samples[-3:]}\n"
                    + cluster.kubectl("get", "pods,events", "-n", namespace).stdout[-3000:]
                ),
            )
            scaled_up_s = time.monotonic() - started
            # The operator holds what the HPA added as the stable's floor.
            eventually(
                lambda: (hpa_floor(cluster, namespace, "v1") or 0) >= 2,
                timeout=30,
                what="the stable HPA's minReplicas raised to what it runs",
                why=lambda: str(watch.samples[-3:]),
            )
            time.sleep(10)
        held = max(s["stable_floor"] or 0 for s in watch.samples)
        # Longer than the scale-down window and period (15 s each): an HPA left at
        # minReplicas 1 would have removed a stable replica by now.
        time.sleep(45)
    figures = {
        "label": "canary",
        "stable_second_replica_ready_s": round(scaled_up_s, 1),
        "held_floor": held,
        "requests": load.ok + len(load.failed),
        "failed": len(load.failed),
        "samples": len(watch.samples),
    }
    print(f"\n[canary] {json.dumps(figures)}")
    if os.environ.get(BENCH_OUT):
        with open(os.environ[BENCH_OUT], "a") as out:
            out.write(json.dumps(figures) + "\n")
    assert not load.failed, f"{len(load.failed)} requests failed: {load.failed[:5]}"
    after = [s for s in watch.samples if (s["stable_floor"] or 0) >= 2]
    assert after, watch.samples
    # From the moment the floor was raised: the stable never wanted or ran fewer replicas
    # than it, the floor never went down, the canary stayed at one replica and 10%.
    floors = [s["stable_floor"] for s in after]
    assert floors == sorted(floors), after
    assert all(s["stable_wanted"] >= s["stable_floor"] for s in after), after
    assert after[-1]["stable_ready"] >= held, after[-5:]
    assert all(s["canary_wanted"] == 1 and s["weight"] == 10 for s in after), after
    assert all(s["phase"] == "Progressing" for s in after), {s["phase"] for s in after}
