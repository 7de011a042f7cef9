"""Traces from reconcile to prediction on the local platform, read back from the real Jaeger.

The operator (deployed from manifests/overlays/local, which points it at the platform's
Jaeger) makes a span per reconcile; the serving pod it creates carries that reconcile's
trace context (TRACEPARENT), so the server's model-load span joins the reconcile's trace,
while each request keeps the context it came with. Later reconciles, each in a trace of its
own, must not roll the pods out for it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import mlflow
import pytest
import sklearn
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from maestro.localplatform import jaeger, platform
from maestro.localplatform.cluster import ClusterConfig, ClusterError
from maestro.localplatform.wait import eventually
from tests.cluster.modeldeployments import API_VERSION, wait_status
from tests.cluster.objects import apply, get, items
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

OPERATOR = "maestro-operator"
SERVING = "maestro-serving"
NAME = "iris"
# A client's own trace context: the request span must continue it.
CLIENT_TRACE = "5b8efff798038103d269b633813fc60c"  # pragma: allowlist secret
CLIENT_PARENT = f"00-{CLIENT_TRACE}-eee19b7ec3c1b174-01"


@pytest.fixture(scope="module")
def jaeger_url(cluster: Cluster) -> str:
    """The platform's Jaeger (the cluster starts it; started here if it is not running)."""
    try:
        return jaeger.up(ClusterConfig()).query_url
    except ClusterError as err:
        pytest.fail(f"Jaeger unavailable on the local platform: {err}", pytrace=False)


@pytest.fixture(scope="module")
def iris_model(mlflow_url: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """One small registered model (version 1) and a request body for it."""
    name = f"trace-{uuid.uuid4().hex[:6]}"
    features, target = load_iris(return_X_y=True, as_frame=True)
    features.columns = [c.replace(" ", "_").strip("_()") for c in features.columns]
    mlflow.set_tracking_uri(mlflow_url)
    mlflow.set_experiment(f"test-tracing-{name}")
    with mlflow.start_run():
        mlflow.sklearn.log_model(
            LogisticRegression(max_iter=300).fit(features, target),
            name="model",
            signature=infer_signature(features.head(3), target.head(3)),
            registered_model_name=name,
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        )
    rows = features.head(2).to_numpy().tolist()
    yield name, {"dataframe_split": {"columns": list(features.columns), "data": rows}}
    MlflowClient(mlflow_url, mlflow_url).delete_registered_model(name)


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {t["key"]: t["value"] for t in span.get("tags", [])}


def spans_named(traces: list[dict[str, Any]], operation: str) -> list[dict[str, Any]]:
    return [s for t in traces for s in t["spans"] if s["operationName"] == operation]


def describe(trace: dict[str, Any]) -> str:
    """The trace as indented lines: service, span name, duration (ms), in start order."""
    by_id = {s["spanID"]: s for s in trace["spans"]}

    def depth(span: dict[str, Any]) -> int:
        refs = [r for r in span.get("references", []) if r["spanID"] in by_id]
        return 1 + depth(by_id[refs[0]["spanID"]]) if refs else 0

    lines = []
    for span in sorted(trace["spans"], key=lambda s: s["startTime"]):
        service = trace["processes"][span["processID"]]["serviceName"]
        lines.append(
            f"{'  ' * depth(span)}{service}: {span['operationName']} "
            f"{span['duration'] / 1000:.1f} ms"
        )
    return "\n".join(lines)


def test_a_prediction_is_traced_from_the_reconcile_into_the_serving_pod(
    deployed_operator: ClusterConfig,
    cluster: Cluster,
    namespace: str,
    iris_model: tuple[str, dict[str, Any]],
    jaeger_url: str,
) -> None:
    model, body = iris_model
    apply(
        cluster,
        namespace,
        {
            "apiVersion": API_VERSION,
            "kind": "ModelDeployment",
            "metadata": {"name": NAME},
            "spec": {
                "model": {"uri": f"models:/{model}/1"},
                "replicas": {"min": 1, "max": 1},
                "autoscaling": {"enabled": False},
            },
        },
    )
    wait_status(
        cluster,
        namespace,
        NAME,
        f"{NAME} Available",
        lambda s: s.get("phase") == "Available" and s.get("readyReplicas", 0) >= 1,
        timeout=60,
    )
    (pod,) = items(cluster, namespace, "pods", f"mlops.maestro.dev/deployment={NAME}")
    url = f"http://{pod['status']['podIP']}:8080/invocations"
    assert httpx.post(url, json=body, timeout=10).status_code == 200
    answer = httpx.post(url, json=body, headers={"traceparent": CLIENT_PARENT}, timeout=10)
    assert answer.status_code == 200, answer.text

    ours = {"k8s.namespace.name": namespace}

    # The operator's reconcile spans, one trace each, with what was reconciled.
    def reconciles() -> list[dict[str, Any]]:
        found = jaeger.find_traces(jaeger_url, OPERATOR, tags={**ours, "maestro.name": NAME})
        return spans_named(found, "reconcile ModelDeployment")

    reconcile_spans = eventually(reconciles, timeout=20, what="reconcile spans in Jaeger")
    for span in reconcile_spans:
        attributes = tags(span)
        assert attributes["maestro.kind"] == "ModelDeployment"
        assert attributes["maestro.name"] == NAME
        assert attributes["k8s.namespace.name"] == namespace
        assert attributes["maestro.result"] in ("ok", "gone")
    assert any(tags(s).get("maestro.generation") == 1 for s in reconcile_spans)

    # The serving pod's spans: its model load (start-up), each request and each batch.
    def serving(operation: str) -> list[dict[str, Any]]:
        return spans_named(
            jaeger.find_traces(jaeger_url, SERVING, tags=ours, operation=operation), operation
        )

    (load,) = eventually(lambda: serving("load models"), timeout=20, what="the load span")
    requests = eventually(
        lambda: len(found := serving("POST /invocations")) >= 2 and found,
        timeout=20,
        what="both request spans",
    )
    assert eventually(lambda: serving("predict"), timeout=20, what="batch spans")
    # A request keeps the context it came with; the other starts a trace of its own.
    assert CLIENT_TRACE in {s["traceID"] for s in requests}
    assert load["traceID"] not in {s["traceID"] for s in requests}

    # The load span is a child of the reconcile that created the revision: one trace from
    # the operator into the pod.
    ((parent,),) = [[r for r in load["references"] if r["refType"] == "CHILD_OF"]]
    whole = jaeger.trace(jaeger_url, load["traceID"])
    assert whole is not None
    creator = next(s for s in whole["spans"] if s["spanID"] == parent["spanID"])
    assert creator["operationName"] == "reconcile ModelDeployment"
    assert tags(creator)["maestro.result"] == "ok"
    assert tags(creator)["maestro.generation"] == 1
    services = {p["serviceName"] for p in whole["processes"].values()}
    assert services == {OPERATOR, SERVING}
    print(f"\nrollout trace {load['traceID']}:\n{describe(whole)}")
    for span in (next(s for s in requests if s["traceID"] == CLIENT_TRACE), *serving("predict")):
        found = jaeger.trace(jaeger_url, span["traceID"])
        assert found is not None
        print(f"request/batch trace {span['traceID']}:\n{describe(found)}")

    # Later reconciles (each its own trace: here an annotation's event) keep the pod
    # template, so nothing rolls out for tracing's sake.
    cluster.kubectl("annotate", "-n", namespace, "modeldeployment", NAME, "touched=1")
    eventually(
        lambda: {s["traceID"] for s in reconciles()} - {load["traceID"]},
        timeout=20,
        what="a later reconcile's trace",
    )
    deployment = get(cluster, namespace, "deployment", f"{NAME}-v1")
    assert deployment is not None
    assert deployment["metadata"]["generation"] == 1
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["TRACEPARENT"].split("-")[1] == load["traceID"].rjust(32, "0")
    assert (
        len(items(cluster, namespace, "replicasets", f"mlops.maestro.dev/deployment={NAME}")) == 1
    )

    # The operator's log lines inside a reconcile carry its trace id.
    logs = "\n".join(platform.operator_logs(deployed_operator).values())
    traced = [
        line
        for line in logs.splitlines()
        if f"[{namespace}/{NAME}]" in line and "trace_id=" in line
    ]
    assert traced, "no operator log line of the reconciles carries a trace id"
    for trace_id in {line.rsplit("trace_id=", 1)[1][:32] for line in traced}:
        # A reconcile still running, or its span still in the exporter's batch, is exported
        # within the batch delay (seconds); a trace that never arrives fails here.
        logged = eventually(
            lambda trace_id=trace_id: jaeger.trace(jaeger_url, trace_id),
            timeout=20,
            what=f"trace {trace_id}, named by an operator log line, in Jaeger",
        )
        assert [
            tags(s)["maestro.name"] for s in spans_named([logged], "reconcile ModelDeployment")
        ] == [NAME]
