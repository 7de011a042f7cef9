"""A model that cannot be served never reaches a pod, a new version that cannot be resolved
never disturbs the revision that serves, and the registry is asked once per model, not once
per ModelDeployment. A namespace-scoped operator runs with the local overlay's settings
against the real MLflow registry (through a counting proxy where requests are counted)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from maestro.localplatform.platform import local_operator_env
from maestro.localplatform.wait import eventually
from tests.cluster.counting_proxy import CountingProxy
from tests.cluster.modeldeployments import ALIAS, API_VERSION, wait_status
from tests.cluster.objects import apply, get, items, ready
from tests.cluster.operator_process import Operator, free_port
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

POLL_SECONDS = 2.0  # the local overlay's MAESTRO_REGISTRY_POLL_INTERVAL


def model_deployment(name: str, uri: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {"model": {"uri": uri, "name": "cancer"}, "replicas": {"min": 1, "max": 1}, **spec},
    }


def deployments(cluster: Cluster, namespace: str) -> list[dict[str, Any]]:
    return items(cluster, namespace, "deployments", "mlops.maestro.dev/deployment")


@pytest.fixture
def proxy(mlflow_url: str) -> Iterator[CountingProxy]:
    with CountingProxy(mlflow_url).running() as running:
        yield running


@pytest.fixture
def operator(
    start_operator: Callable[..., Operator], proxy: CountingProxy, prometheus_url: str
) -> Operator:
    settings = local_operator_env(
        MAESTRO_MLFLOW_TRACKING_URI=proxy.url, MAESTRO_PROMETHEUS_URL=prometheus_url
    )
    assert float(settings["MAESTRO_REGISTRY_POLL_INTERVAL"]) == POLL_SECONDS
    return start_operator(env=settings)


def test_a_missing_version_creates_no_deployment(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    uri = f"models:/nosuch-{namespace}/1"
    apply(cluster, namespace, model_deployment("typo", uri))
    obj = wait_status(
        cluster, namespace, "typo", "ModelNotFound", lambda s: s.get("phase") == "Pending"
    )
    condition = ready(obj)
    assert (condition["status"], condition["reason"]) == ("False", "ModelNotFound")
    assert uri in condition["message"], condition["message"]
    time.sleep(2 * POLL_SECONDS)  # any Deployment would have been applied by now
    assert deployments(cluster, namespace) == [], operator.logs()[-3000:]
    assert get(cluster, namespace, "modeldeployment", "typo")["status"]["phase"] == "Pending"


def test_an_unresolvable_new_version_leaves_the_stable_revision_serving(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    registered: tuple[str, Any],
) -> None:
    model, _ = registered
    apply(cluster, namespace, model_deployment("md", f"models:/{model}@{ALIAS}"))
    wait_status(cluster, namespace, "md", "Available", lambda s: s.get("phase") == "Available", 180)
    (before,) = deployments(cluster, namespace)
    missing = f"models:/{model}/99"
    apply(cluster, namespace, model_deployment("md", missing))
    obj = wait_status(
        cluster, namespace, "md", "ModelNotFound", lambda s: s.get("phase") == "Degraded"
    )
    condition = ready(obj)
    assert condition["reason"] == "ModelNotFound" and missing in condition["message"]
    assert "v1 keeps serving" in condition["message"], condition["message"]
    assert obj["status"]["stableRevision"] == "v1" and "canaryRevision" not in obj["status"]
    time.sleep(2 * POLL_SECONDS)
    (after,) = deployments(cluster, namespace)
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert (after["status"].get("readyReplicas") or 0) >= 1


def test_owned_objects_deleted_by_someone_else_are_put_back(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    registered: tuple[str, Any],
) -> None:
    """The operator reads its owned objects from watches: a deletion of one of them (by a
    user, a cleanup job) wakes the ModelDeployment, which applies it again, leaving the
    serving Deployment alone."""
    model, _ = registered
    apply(cluster, namespace, model_deployment("md", f"models:/{model}@{ALIAS}"))
    wait_status(cluster, namespace, "md", "Available", lambda s: s.get("phase") == "Available", 180)
    selector = "mlops.maestro.dev/deployment=md"
    removed = "services,poddisruptionbudgets,networkpolicies"
    before = {
        (o["kind"], o["metadata"]["name"]): o for o in items(cluster, namespace, removed, selector)
    }
    assert {kind for kind, _ in before} == {"Service", "PodDisruptionBudget", "NetworkPolicy"}
    (serving,) = deployments(cluster, namespace)
    cluster.kubectl("delete", removed, "-n", namespace, "-l", selector, "--wait=true")

    def put_back() -> bool:
        now = {
            (o["kind"], o["metadata"]["name"]): o
            for o in items(cluster, namespace, removed, selector)
        }
        return now.keys() == before.keys() and all(
            now[key]["metadata"]["uid"] != before[key]["metadata"]["uid"] for key in now
        )

    eventually(put_back, timeout=30, interval=0.5, what=f"{sorted(before)} applied again")
    (after,) = deployments(cluster, namespace)
    assert after["metadata"]["uid"] == serving["metadata"]["uid"]
    assert after["metadata"]["generation"] == serving["metadata"]["generation"]
    assert get(cluster, namespace, "modeldeployment", "md")["status"]["phase"] == "Available"


def test_a_model_that_cannot_load_reports_the_pods_reason_within_a_minute(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    started = time.monotonic()
    apply(cluster, namespace, model_deployment("broken", "file:///models/not-there"))
    obj = wait_status(
        cluster,
        namespace,
        "broken",
        "ModelLoadFailed",
        lambda s: any(c.get("reason") == "ModelLoadFailed" for c in s.get("conditions") or []),
        timeout=60,
    )
    took = time.monotonic() - started
    condition = ready(obj)
    assert obj["status"]["phase"] == "Failed"
    assert "/models/not-there" in condition["message"], condition["message"]
    assert obj["status"]["loadFailure"]["revision"] == obj["status"]["stableRevision"]
    print(f"ModelLoadFailed after {took:.1f} s")


def test_registry_requests_follow_the_models_not_the_deployments(
    cluster: Cluster, namespace: str, operator: Operator, proxy: CountingProxy
) -> None:
    models, per_model = 5, 20
    objs = [
        model_deployment(f"md-{i:03d}", f"models:/missing-{namespace}-{i % models}/1")
        for i in range(models * per_model)
    ]
    apply(cluster, namespace, *objs)

    def all_not_found() -> bool:
        out = cluster.kubectl(
            "get", "modeldeployments", "-n", namespace, "-o",
            "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].reason}",
        ).stdout.split()  # fmt: skip
        return len(out) == len(objs) and set(out) == {"ModelNotFound"}

    eventually(all_not_found, timeout=120, what="every ModelDeployment at ModelNotFound")
    before, started = proxy.registry_requests(), time.monotonic()
    time.sleep(10 * POLL_SECONDS)
    counted = proxy.registry_requests() - before
    window = time.monotonic() - started
    # Polled per ModelDeployment this would be about 100 per interval; shared and backed
    # off, each model is asked at most once per interval.
    limit = models * (window / POLL_SECONDS + 1)
    print(f"{counted} registry requests in {window:.0f} s for {len(objs)} ModelDeployments")
    assert counted <= limit, (counted, limit, proxy.counts.most_common(5))
    assert deployments(cluster, namespace) == []


def test_a_moved_alias_starts_a_rollout_through_the_registry_webhook(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    mlflow_url: str,
    prometheus_url: str,
    registered: tuple[str, Any],
) -> None:
    """Polling every 10 minutes, the operator still rolls out at once: MLflow posts the
    alias move to the operator's webhook endpoint."""
    model, _ = registered
    port = free_port()
    hook = f"maestro-test-{namespace}"
    start_operator(
        env=local_operator_env(
            MAESTRO_MLFLOW_TRACKING_URI=mlflow_url,
            MAESTRO_PROMETHEUS_URL=prometheus_url,
            MAESTRO_REGISTRY_POLL_INTERVAL="600",
            MAESTRO_REGISTRY_WEBHOOK_LISTEN=f"127.0.0.1:{port}",
            MAESTRO_REGISTRY_WEBHOOK_URL=f"http://127.0.0.1:{port}/mlflow-webhook",
            MAESTRO_REGISTRY_WEBHOOK_NAME=hook,
            MAESTRO_REGISTRY_WEBHOOK_SECRET=f"secret-{namespace}",
        )
    )
    client = MlflowClient(mlflow_url, mlflow_url)
    try:
        eventually(
            lambda: any(w.name == hook for w in client.list_webhooks(max_results=1000)),
            timeout=30,
            what="the operator's webhook registered in MLflow",
        )
        apply(cluster, namespace, model_deployment("md", f"models:/{model}@{ALIAS}"))
        wait_status(
            cluster, namespace, "md", "Available", lambda s: s.get("phase") == "Available", 180
        )
        moved = time.monotonic()
        client.set_registered_model_alias(model, ALIAS, "2")
        obj = wait_status(
            cluster,
            namespace,
            "md",
            "a rollout of v2",
            lambda s: "v2" in (s.get("canaryRevision"), s.get("stableRevision")),
            timeout=30,
        )
        took = time.monotonic() - moved
        print(f"rollout of v2 started {took:.1f} s after the alias moved (poll interval 600 s)")
        assert took < 30 and obj["status"]["stableModelUri"].startswith(f"models:/{model}/")
    finally:
        for webhook in client.list_webhooks(max_results=1000):
            if webhook.name == hook:
                client.delete_webhook(webhook.webhook_id)


@pytest.fixture
def unservable_model(mlflow_url: str, namespace: str, tmp_path: Path) -> str:
    """A registered version whose MLmodel has a flavor but no python_function."""
    client = MlflowClient(mlflow_url, mlflow_url)
    experiment = client.create_experiment(f"unservable-{namespace}")
    run = client.create_run(experiment)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text(
        "artifact_path: model\nflavors:\n  keras:\n    keras_version: 3.0.0\n"
    )
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.set_terminated(run.info.run_id)
    name = f"keras-only-{namespace}"
    client.create_registered_model(name)
    client.create_model_version(
        name, source=f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    return name


@pytest.mark.parametrize("case", ["no-python-function-flavor", "run-without-model"])
def test_a_model_that_cannot_be_served_reaches_no_pod(
    cluster: Cluster,
    namespace: str,
    operator: Operator,
    case: str,
    request: pytest.FixtureRequest,
) -> None:
    if case == "no-python-function-flavor":
        uri = f"models:/{request.getfixturevalue('unservable_model')}/1"
        reason, fragment = "ModelNotServable", "no python_function"
    else:
        uri = "runs:/00000000000000000000000000000000/model"
        reason, fragment = "ModelNotFound", "00000000000000000000000000000000"
    apply(cluster, namespace, model_deployment("md", uri))
    obj = wait_status(
        cluster,
        namespace,
        "md",
        reason,
        lambda s: any(c.get("reason") == reason for c in s.get("conditions") or []),
    )
    assert obj["status"]["phase"] == "Pending"
    assert fragment in ready(obj)["message"], ready(obj)["message"]
    time.sleep(2 * POLL_SECONDS)
    assert deployments(cluster, namespace) == []
