"""Dependencies going away under a real operator: Prometheus mid-canary, MLflow, the
PostgreSQL under MLflow, and the API server mid-rollout.

The operator is a process serving the test namespace (the `start_operator` fixture), set
up as the local overlay sets up the in-cluster one, with MLflow and Prometheus behind
counting proxies so the test sees every request it sends them. Each dependency is really
stopped (the local platform's MLflow, Prometheus, PostgreSQL and kube-apiserver
processes) and started again. What must hold, per the reliability issue:

- the operator backs off: its requests to the missing dependency are counted and stay
  far below one per reconcile;
- status says why (the Synced condition, or the canary's holding message) while Ready
  keeps saying what runs;
- a healthy deployment is never rolled back because analysis figures are missing;
- everything resumes on its own once the dependency is back.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from mlflow import MlflowClient

from maestro.localplatform import cluster as local_cluster
from maestro.localplatform import mlflow_server, prometheus
from maestro.localplatform.platform import local_operator_env
from tests.cluster.counting_proxy import CountingProxy
from tests.cluster.modeldeployments import ALIAS, API_VERSION, Mesh, wait_status
from tests.cluster.objects import apply, get, items
from tests.cluster.operator_process import Operator, free_port
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

DEPLOYMENT = "mlops.maestro.dev/deployment"
# How long each dependency stays down once the operator noticed: long enough for the
# back-off's attempts (2, 4, 8 s) to show against one request per poll or analysis.
HOLD = 24.0


def model_deployment(name: str, model: str, strategy: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": f"models:/{model}@{ALIAS}"},
            "replicas": {"min": 1, "max": 1},
            "autoscaling": {"enabled": False},
            "strategy": strategy,
        },
    }


CANARY = {
    "type": "Canary",
    "canary": {
        "steps": [50, 100],
        "stepDuration": "6s",
        "analysis": {
            "interval": "4s",
            "maxErrorRate": 0.05,
            "maxLatencyP95Ms": 2000,
            "minRequests": 5,
            "maxFailedChecks": 2,
        },
    },
}


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), {})


class Proxies:
    """MLflow and Prometheus behind counting proxies, for one operator."""

    def __init__(self, mlflow_url: str, prometheus_url: str) -> None:
        self.mlflow = CountingProxy(mlflow_url)
        self.prometheus = CountingProxy(prometheus_url)

    def total(self, proxy: CountingProxy) -> int:
        with proxy.lock:
            return sum(proxy.counts.values())


@pytest.fixture
def proxies(mlflow_url: str, prometheus_url: str) -> Iterator[Proxies]:
    found = Proxies(mlflow_url, prometheus_url)
    with found.mlflow.running(), found.prometheus.running():
        yield found


@pytest.fixture
def operator(start_operator: Callable[..., Operator], proxies: Proxies) -> tuple[Operator, str]:
    """The operator and its metrics URL."""
    metrics = f"127.0.0.1:{free_port()}"
    started = start_operator(
        env=local_operator_env(
            MAESTRO_MLFLOW_TRACKING_URI=proxies.mlflow.url,
            MAESTRO_PROMETHEUS_URL=proxies.prometheus.url,
            MAESTRO_METRICS_LISTEN=metrics,
        )
    )
    return started, f"http://{metrics}/metrics"


def operator_metric(url: str, name: str, kind: str) -> float:
    """The sum of a counter's samples for one kind, from the operator's /metrics."""
    with urllib.request.urlopen(url, timeout=5) as rsp:
        text = rsp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and f'kind="{kind}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def available(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return wait_status(
        cluster,
        namespace,
        name,
        f"{name} Available",
        lambda s: s.get("phase") == "Available" and s.get("readyReplicas", 0) >= 1,
        timeout=120,
    )


def serving(cluster: Cluster, namespace: str, name: str) -> dict[str, int]:
    """Ready replicas per Deployment of the ModelDeployment."""
    return {
        d["metadata"]["name"]: (d.get("status") or {}).get("readyReplicas", 0)
        for d in items(cluster, namespace, "deployments", f"{DEPLOYMENT}={name}")
    }


def test_prometheus_down_mid_canary_holds_the_step_and_the_canary_resumes(
    operator: tuple[Operator, str],
    proxies: Proxies,
    cluster: Cluster,
    namespace: str,
    registered: tuple[str, Any],
    mlflow_url: str,
) -> None:
    model, features = registered
    client = MlflowClient(mlflow_url, mlflow_url)
    client.set_registered_model_alias(model, ALIAS, "1")
    apply(cluster, namespace, model_deployment("cancer", model, CANARY))
    available(cluster, namespace, "cancer")
    rows = features.head(4).to_numpy().tolist()
    body = {"dataframe_split": {"columns": list(features.columns), "data": rows}}
    cfg = prometheus.PrometheusConfig()
    with Mesh(cluster, namespace, "cancer", body) as mesh:
        client.set_registered_model_alias(model, ALIAS, "2")
        wait_status(
            cluster,
            namespace,
            "cancer",
            "the canary of v2 at its first step",
            lambda s: s.get("canaryRevision") == "v2" and s.get("canaryWeight") == 50,
            mesh=mesh,
        )
        prometheus.down(cfg)
        try:
            down_at = time.monotonic()
            before = proxies.total(proxies.prometheus)
            held = wait_status(
                cluster,
                namespace,
                "cancer",
                "the canary holding, saying why",
                lambda s: (
                    "analysis unavailable" in condition({"status": s}, "Ready").get("message", "")
                ),
                timeout=40,
                mesh=mesh,
            )
            # Held for HOLD s in all: still the same canary at the same step, nothing failed.
            time.sleep(max(0.0, HOLD - (time.monotonic() - down_at)))
            now = get(cluster, namespace, "modeldeployment", "cancer")
            assert now is not None
            status = now["status"]
            assert status["phase"] == "Progressing", status
            assert status.get("canaryRevision") == "v2" and status.get("canaryWeight") == 50
            assert not status.get("failedChecks"), status
            asked = proxies.total(proxies.prometheus) - before
            elapsed = time.monotonic() - down_at
            print(
                f"\nPrometheus down {elapsed:.0f} s: {asked} requests from the operator"
                f" (analysis every 4 s would be {3 * elapsed / 4:.0f});"
                f" status: {condition(held, 'Ready')['message']}"
            )
            # Back-off 2, 4, 8, 16 s: a handful of attempts of up to three queries each.
            assert asked <= 18, proxies.prometheus.counts
            # The stable revision served all along.
            assert serving(cluster, namespace, "cancer").get("cancer-v1") == 1
        finally:
            prometheus.up(cfg)
        promoted = wait_status(
            cluster,
            namespace,
            "cancer",
            "v2 promoted once Prometheus is back",
            lambda s: s.get("stableRevision") == "v2" and s.get("phase") == "Available",
            timeout=150,
            mesh=mesh,
        )
        assert promoted["status"].get("failedChecks") in (None, 0)
    assert mesh.codes.get("v1") and set(mesh.codes["v1"]) <= {200, 503}, mesh.summary()


def stop_postgresql() -> Callable[[], None]:
    """Stop the local PostgreSQL cluster; returns what starts it again."""
    version, name = subprocess.run(
        ["pg_lsclusters", "-h"], capture_output=True, text=True, check=True
    ).stdout.split()[:2]
    subprocess.run(["pg_ctlcluster", version, name, "stop"], check=True)

    def start() -> None:
        subprocess.run(["pg_ctlcluster", version, name, "start"], check=True)

    return start


def test_mlflow_and_its_database_down_are_reported_backed_off_and_survived(
    operator: tuple[Operator, str],
    proxies: Proxies,
    cluster: Cluster,
    namespace: str,
    registered: tuple[str, Any],
    mlflow_url: str,
) -> None:
    model, _ = registered
    MlflowClient(mlflow_url, mlflow_url).set_registered_model_alias(model, ALIAS, "1")
    apply(cluster, namespace, model_deployment("steady", model, {"type": "Rolling"}))
    available(cluster, namespace, "steady")
    cfg = mlflow_server.MlflowConfig()

    def outage(what: str, stop: Callable[[], Callable[[], None]], reason: str) -> None:
        start = stop()
        try:
            down_at = time.monotonic()
            before = proxies.mlflow.registry_requests()
            reported = wait_status(
                cluster,
                namespace,
                "steady",
                f"Synced=False {reason} with {what} down",
                lambda s: condition({"status": s}, "Synced").get("reason") == reason,
                timeout=60,
            )
            time.sleep(max(0.0, HOLD - (time.monotonic() - down_at)))
            asked = proxies.mlflow.registry_requests() - before
            elapsed = time.monotonic() - down_at
            now = get(cluster, namespace, "modeldeployment", "steady")
            assert now is not None
            synced = condition(reported, "Synced")["message"][:160]
            print(
                f"\n{what} down {elapsed:.0f} s: {asked} registry requests (polling every 2 s"
                f" would be {elapsed / 2:.0f}); Synced: {synced}"
            )
            # What runs still runs, and Ready says so.
            assert condition(now, "Ready")["status"] == "True", now["status"]
            assert now["status"]["phase"] == "Available"
            assert serving(cluster, namespace, "steady") == {"steady-v1": 1}
            # Polled every 2 s it would be one request per poll; failures back off (2, 4, 8 s
            # ...), each attempt one retry of the client.
            assert asked <= elapsed / 2, proxies.mlflow.counts
        finally:
            start()
        wait_status(
            cluster,
            namespace,
            "steady",
            f"Synced again after {what} is back",
            lambda s: condition({"status": s}, "Synced").get("status") == "True",
            timeout=90,
        )

    def stop_mlflow() -> Callable[[], None]:
        mlflow_server.down(cfg)

        def start() -> None:
            mlflow_server.up(cfg)

        return start

    outage("MLflow", stop_mlflow, "RegistryUnavailable")
    outage("PostgreSQL", stop_postgresql, "RegistryUnavailable")
    assert serving(cluster, namespace, "steady") == {"steady-v1": 1}


def test_the_api_server_restarted_mid_rollout_and_the_rollout_completes(
    operator: tuple[Operator, str],
    cluster: Cluster,
    namespace: str,
    registered: tuple[str, Any],
    mlflow_url: str,
) -> None:
    started, metrics = operator
    model, _ = registered
    client = MlflowClient(mlflow_url, mlflow_url)
    client.set_registered_model_alias(model, ALIAS, "1")
    apply(cluster, namespace, model_deployment("moving", model, {"type": "Rolling"}))
    available(cluster, namespace, "moving")
    client.set_registered_model_alias(model, ALIAS, "2")
    wait_status(
        cluster,
        namespace,
        "moving",
        "the rollout of v2 started",
        lambda s: s.get("phase") == "Progressing",
        timeout=60,
    )
    errors_before = operator_metric(
        metrics, "maestro_operator_reconcile_errors_total", "ModelDeployment"
    )
    local_cluster.restart_apiserver(local_cluster.ClusterConfig(), down_for=10)
    done = wait_status(
        cluster,
        namespace,
        "moving",
        "v2 serving after the API server came back",
        lambda s: s.get("stableRevision") == "v2" and s.get("phase") == "Available",
        timeout=120,
    )
    errors = operator_metric(metrics, "maestro_operator_reconcile_errors_total", "ModelDeployment")
    print(f"\nAPI server down 10 s mid-rollout: {errors - errors_before:.0f} failed reconciles")
    # Retried with doubling back-off: a few attempts in 10 s, not one per event or tick.
    assert errors - errors_before <= 6
    assert done["status"]["observedGeneration"] == done["metadata"]["generation"]
    assert serving(cluster, namespace, "moving") == {"moving-v2": 1}
    assert condition(done, "Synced").get("status") in (None, "True")
    assert started.process.poll() is None, started.logs()[-2000:]
    events = json.loads(cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout)[
        "items"
    ]
    assert not [e for e in events if e.get("reason") == "RolloutAborted"], "nothing rolled back"
