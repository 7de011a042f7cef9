"""DriftChecks end to end on the local platform, with the operator deployed from
manifests/overlays/local: a real serving pod answers traffic and ships its prediction log
to the object store (SeaweedFS); the check's CronJob runs `maestro drift run` (triggered
with `kubectl create job --from=cronjob/...`, as an operator would, rather than waiting
for the hour); its result reaches the status, Events, the MLflow run, the report in the
object store and the operator's metrics; critical drift starts one retrain whose model
becomes the next `candidate`.
"""

from __future__ import annotations

import random
import time
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_iris

from maestro.localplatform.cluster import ClusterConfig
from maestro.localplatform.objectstore import LocalObjectStore
from maestro.localplatform.wait import eventually
from tests.cluster.modeldeployments import API_VERSION, wait_status
from tests.cluster.objects import apply, events, get, items, ready
from tests.cluster.test_dashboards import (
    GRAFANA_VARIABLES,
    NO_DATA_HERE,
    answer,
    committed_queries,
    has_data,
    substitute,
)
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
SHIFTED = ["sepal width (cm)", "petal length (cm)"]


def training_run(name: str, model: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingRun",
        "metadata": {"name": name},
        "spec": {
            "framework": "SKLearn",
            "params": {"model": "logistic_regression", "test_size": 0.2},
            "dataset": {"uri": "sklearn://iris"},
            "mlflow": {"experiment": f"drift-{model}"},
            "registerAs": {"name": model, "alias": "candidate"},
            "backoffLimit": 0,
        },
    }


def drift_check(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "DriftCheck",
        "metadata": {"name": name},
        "spec": {
            "deployment": "iris",
            "schedule": "0 0 1 1 *",  # never due during the test: runs are triggered
            "reference": {"trainingRun": "iris-train"},
            "current": {"window": "1h"},
            "thresholds": {"warning": 0.25, "critical": 0.5},
            "columns": FEATURES,
            **spec,
        },
    }


def wait_run(
    cluster: Cluster, namespace: str, name: str, job: str, timeout: float = 180
) -> dict[str, Any]:
    """The DriftCheck once it reported Job `job`."""
    seen: list[Any] = [None]

    def probe() -> dict[str, Any] | None:
        obj = get(cluster, namespace, "driftcheck", name) or {}
        seen[0] = obj.get("status")
        return obj if (obj.get("status") or {}).get("lastJob") == job else None

    def why() -> str:
        logs = cluster.kubectl(
            "logs", "-n", namespace, f"job/{job}", "--tail=30", check=False
        ).stdout
        return f"status: {seen[0]}\njob log:\n{logs}"

    return eventually(probe, timeout=timeout, what=f"{name} reporting {job}", why=why)


def condition(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(status, reason) of the Ready condition, None before there is one."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == "Ready":
            return c["status"], c["reason"]
    return None


def trigger(cluster: Cluster, namespace: str, check: str, job: str) -> None:
    cluster.kubectl("create", "job", "-n", namespace, f"--from=cronjob/{check}-drift", job)


def serving_pod(cluster: Cluster, namespace: str) -> str:
    for pod in items(cluster, namespace, "pods", "mlops.maestro.dev/deployment=iris"):
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        if conditions.get("Ready") == "True":
            return f"http://{pod['status']['podIP']}:8080"
    raise AssertionError("no ready serving pod")


def send(url: str, rows: list[dict[str, float]], batch: int = 20) -> None:
    with httpx.Client(timeout=10) as http:
        for i in range(0, len(rows), batch):
            rsp = http.post(f"{url}/invocations", json={"dataframe_records": rows[i : i + batch]})
            assert rsp.status_code == 200, rsp.text


def logged_rows(store: LocalObjectStore, namespace: str) -> int:
    import io

    import pandas as pd

    prefix = f"s3://maestro/predictions/namespace={namespace}/deployment=iris/kind=predictions/"
    client = store.client()
    return sum(
        len(pd.read_parquet(io.BytesIO(client.get_bytes(o.uri)))) for o in client.list(prefix)
    )


@pytest.fixture
def served(
    deployed_operator: ClusterConfig,
    cluster: Cluster,
    namespace: str,
    mlflow_url: str,
    objectstore: LocalObjectStore,
) -> Iterator[tuple[str, MlflowClient]]:
    """The template TrainingRun trained and registered version 1, served by `iris`."""
    objectstore.ensure_secret(namespace)
    model = f"drift-{uuid.uuid4().hex[:6]}"
    client = MlflowClient(mlflow_url, mlflow_url)
    apply(cluster, namespace, training_run("iris-train", model))
    eventually(
        lambda: (
            ((get(cluster, namespace, "trainingrun", "iris-train") or {}).get("status") or {}).get(
                "phase"
            )
            == "Succeeded"
        ),
        timeout=240,
        what="the template TrainingRun trained",
        why=lambda: str(get(cluster, namespace, "trainingrun", "iris-train")),
    )
    client.set_registered_model_alias(model, "champion", "1")
    apply(
        cluster,
        namespace,
        {
            "apiVersion": API_VERSION,
            "kind": "ModelDeployment",
            "metadata": {"name": "iris"},
            "spec": {
                "model": {"uri": f"models:/{model}@champion"},
                "replicas": {"min": 1, "max": 1},
                "autoscaling": {"enabled": False},
            },
        },
    )
    wait_status(
        cluster,
        namespace,
        "iris",
        "iris Available",
        lambda s: s.get("phase") == "Available",
        timeout=150,
    )
    yield model, client


def drift_panels_have_data(prometheus_url: str, namespace: str, deployment: str) -> None:
    """The model-quality dashboard's drift panels, which tests/cluster/test_dashboards.py
    leaves to this test (a DriftCheck run takes longer than it has): each answers from the
    figures the operator exports after a run, on the real Prometheus."""
    values = {**GRAFANA_VARIABLES, "namespace": namespace, "deployment": deployment}
    panels = [q for q in committed_queries() if (q.dashboard, q.panel) in NO_DATA_HERE]
    assert len(panels) == len(NO_DATA_HERE), panels

    def empty() -> list[str]:
        return [
            str(q)
            for q in panels
            if not has_data(answer(prometheus_url, substitute(q.expr, values)))
        ]

    eventually(
        lambda: not empty(),
        timeout=60,
        what="data in the dashboard's drift panels",
        why=lambda: "without data:\n" + "\n".join(empty()),
        interval=2,
    )


def test_served_traffic_drifts_on_exactly_the_shifted_columns_and_retrains_once(
    cluster: Cluster,
    namespace: str,
    served: tuple[str, MlflowClient],
    objectstore: LocalObjectStore,
    deployed_operator: ClusterConfig,
    prometheus_url: str,
) -> None:
    model, client = served
    rng = random.Random(7)
    iris = load_iris(as_frame=True).frame[FEATURES]
    reference_rows = iris.to_dict(orient="records")
    url = serving_pod(cluster, namespace)

    # Traffic like the training data: the served rows are the reference's own.
    normal = [rng.choice(reference_rows) for _ in range(150)]
    send(url, normal)
    eventually(
        lambda: logged_rows(objectstore, namespace) >= 150,
        timeout=60,
        what="the prediction log shipped to the object store",
    )
    apply(
        cluster,
        namespace,
        drift_check(
            "iris-drift", onDrift={"retrain": {"template": "iris-train", "cooldown": "1h"}}
        ),
    )
    scheduled = eventually(
        lambda: (lambda o: o if condition(o) == ("True", "Scheduled") else None)(
            get(cluster, namespace, "driftcheck", "iris-drift") or {}
        ),
        timeout=30,
        what="the DriftCheck scheduled",
    )
    assert "kubectl create job" in ready(scheduled)["message"]
    cron = get(cluster, namespace, "cronjob", "iris-drift-drift")
    assert cron is not None and cron["metadata"]["ownerReferences"][0]["kind"] == "DriftCheck"

    trigger(cluster, namespace, "iris-drift", "run-1")
    first = wait_run(cluster, namespace, "iris-drift", "run-1")["status"]
    assert first["severity"] == "Ok", first
    assert first.get("driftedColumns", []) == [] and first["driftShare"] == 0
    assert sorted(c["name"] for c in first["columns"]) == sorted(FEATURES)
    assert ("Normal", "NoDrift") in {(t, r) for t, r, _ in events(cluster, namespace, "iris-drift")}

    # Shifted traffic on two known columns, four times the normal traffic.
    shifted = []
    for _ in range(600):
        row = dict(rng.choice(reference_rows))
        row["sepal width (cm)"] = row["sepal width (cm)"] * 2.0
        row["petal length (cm)"] = row["petal length (cm)"] + 4.0
        shifted.append(row)
    send(url, shifted)
    eventually(
        lambda: logged_rows(objectstore, namespace) >= 750,
        timeout=60,
        what="the shifted traffic shipped",
    )
    trigger(cluster, namespace, "iris-drift", "run-2")
    second = wait_run(cluster, namespace, "iris-drift", "run-2")
    status = second["status"]
    assert sorted(status["driftedColumns"]) == sorted(SHIFTED), status
    assert status["severity"] == "Critical" and status["driftShare"] == 0.5
    assert condition(second) == ("True", "DriftDetected")
    drift_panels_have_data(prometheus_url, namespace, second["spec"]["deployment"])
    assert ("Warning", "DriftDetected") in {
        (t, r) for t, r, _ in events(cluster, namespace, "iris-drift")
    }

    # Its report in the object store and its MLflow run.
    report = objectstore.client().get_bytes(status["reportUri"]).decode()
    assert "Critical" in report and "petal length (cm)" in report
    run = client.get_run(status["mlflowRunId"])
    assert run.data.metrics["drift_share"] == 0.5
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "report.html",
        "result.json",
    }

    # The operator's metrics, which the PrometheusRule alerts on.
    operator_pod = items(cluster, "maestro-system", "pods", "app.kubernetes.io/component=operator")[
        0
    ]
    metrics = (
        urllib.request.urlopen(f"http://{operator_pod['status']['podIP']}:8082/metrics", timeout=5)
        .read()
        .decode()
    )
    share = [
        line
        for line in metrics.splitlines()
        if line.startswith("maestro_driftcheck_drift_share{") and f'namespace="{namespace}"' in line
    ]
    assert share and share[0].endswith(" 0.5"), share
    # ... and its own: reconciles timed per kind, writes counted.
    assert 'maestro_operator_reconcile_duration_seconds_count{kind="DriftCheck"}' in metrics
    assert 'maestro_operator_api_writes_total{kind="cronjobs",verb="apply"}' in metrics
    assert get(cluster, namespace, "prometheusrule", "iris-drift-drift") is not None

    # One retrain TrainingRun, owned by the check and labelled with it.
    retrains = items(cluster, namespace, "trainingruns", "mlops.maestro.dev/driftcheck=iris-drift")
    assert len(retrains) == 1, [r["metadata"]["name"] for r in retrains]
    retrain = retrains[0]
    assert retrain["metadata"]["ownerReferences"][0]["name"] == "iris-drift"
    assert retrain["metadata"]["annotations"]["mlops.maestro.dev/drift-job"] == "run-2"
    assert status["lastRetrain"] == retrain["metadata"]["name"]

    # Still critical: no second retrain (one open at a time, then the cooldown).
    trigger(cluster, namespace, "iris-drift", "run-3")
    wait_run(cluster, namespace, "iris-drift", "run-3")
    again = items(cluster, namespace, "trainingruns", "mlops.maestro.dev/driftcheck=iris-drift")
    assert len(again) == 1
    assert "RetrainSkipped" in {r for _, r, _ in events(cluster, namespace, "iris-drift")}

    # The retrain's model is the next candidate.
    name = retrain["metadata"]["name"]
    done = eventually(
        lambda: (lambda o: o if (o.get("status") or {}).get("phase") == "Succeeded" else None)(
            get(cluster, namespace, "trainingrun", name) or {}
        ),
        timeout=240,
        what="the retrain TrainingRun succeeded",
        why=lambda: str(get(cluster, namespace, "trainingrun", name)),
    )
    candidate = client.get_model_version_by_alias(model, "candidate")
    assert candidate.version == done["status"]["modelVersion"] != "1"


def test_bad_input_ends_the_run_with_its_reason_and_no_retry(
    deployed_operator: ClusterConfig,
    cluster: Cluster,
    namespace: str,
    objectstore: LocalObjectStore,
) -> None:
    import io

    objectstore.ensure_secret(namespace)
    # The check needs its ModelDeployment to exist, not to serve.
    apply(
        cluster,
        namespace,
        {
            "apiVersion": API_VERSION,
            "kind": "ModelDeployment",
            "metadata": {"name": "iris"},
            "spec": {"model": {"uri": "models:/no-such-model@champion"}},
        },
    )
    iris = load_iris(as_frame=True).frame[FEATURES]
    data = f"s3://maestro/test-data/{namespace}/iris.parquet"
    buffer = io.BytesIO()
    iris.to_parquet(buffer)
    objectstore.client().put_bytes(data, buffer.getvalue())
    by_uri = {"reference": {"uri": data}}

    # Nothing was served: an empty window.
    apply(cluster, namespace, drift_check("empty", **by_uri))
    eventually(
        lambda: get(cluster, namespace, "cronjob", "empty-drift"), timeout=30, what="the CronJob"
    )
    trigger(cluster, namespace, "empty", "empty-1")
    obj = wait_run(cluster, namespace, "empty", "empty-1")
    assert condition(obj) == ("False", "EmptyData")
    assert "send traffic" in ready(obj)["message"]

    # A column the data does not have.
    apply(
        cluster,
        namespace,
        drift_check("typo", current={"uri": data}, columns=[*FEATURES, "petal colour"], **by_uri),
    )
    eventually(
        lambda: get(cluster, namespace, "cronjob", "typo-drift"), timeout=30, what="the CronJob"
    )
    trigger(cluster, namespace, "typo", "typo-1")
    obj = wait_run(cluster, namespace, "typo", "typo-1")
    assert condition(obj) == ("False", "ColumnMissing")
    assert "petal colour" in ready(obj)["message"]
    job = get(cluster, namespace, "job", "typo-1") or {}
    assert (job.get("status") or {}).get("failed") == 1, job.get("status")  # not retried
    assert ("Warning", "ColumnMissing") in {
        (t, r) for t, r, _ in events(cluster, namespace, "typo")
    }

    # Its ModelDeployment gone, a check does not keep running unreported: its CronJob is
    # suspended until the deployment is back.
    md = get(cluster, namespace, "modeldeployment", "iris")
    cluster.kubectl("delete", "modeldeployment", "iris", "-n", namespace)
    obj = eventually(
        lambda: (lambda o: o if condition(o) == ("False", "DeploymentNotFound") else None)(
            get(cluster, namespace, "driftcheck", "typo") or {}
        ),
        timeout=30,
        what="the check blocked",
    )
    assert "suspended until then" in ready(obj)["message"]
    assert (get(cluster, namespace, "cronjob", "typo-drift") or {})["spec"]["suspend"] is True
    assert md is not None
    apply(
        cluster,
        namespace,
        {k: md[k] for k in ("apiVersion", "kind", "spec")} | {"metadata": {"name": "iris"}},
    )
    eventually(
        lambda: (
            (get(cluster, namespace, "cronjob", "typo-drift") or {})["spec"]["suspend"] is False
        ),
        timeout=30,
        what="the CronJob resumed",
    )

    # A schedule the CRD's pattern lets through but CronJob validation refuses.
    apply(cluster, namespace, drift_check("bad-cron", schedule="61 * * * *", **by_uri))
    obj = eventually(
        lambda: (lambda o: o if condition(o) == ("False", "ScheduleRejected") else None)(
            get(cluster, namespace, "driftcheck", "bad-cron") or {}
        ),
        timeout=30,
        what="the schedule rejected",
    )
    assert obj["status"]["phase"] == "Failed" and "spec.schedule" in ready(obj)["message"]
    time.sleep(3)
    after = get(cluster, namespace, "driftcheck", "bad-cron") or {}
    assert (
        after["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    )  # no retry loop
