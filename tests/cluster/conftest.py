"""Fixtures of the cluster tests: operator processes serving only the test's namespace, and
the registered model the ModelDeployment tests deploy."""

from __future__ import annotations

import os
import subprocess
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
import pytest
import sklearn
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from maestro.localplatform.cluster import ClusterConfig
from maestro.localplatform.objectstore import LocalObjectStore
from maestro.localplatform.wait import eventually
from tests.cluster.modeldeployments import ALIAS
from tests.cluster.operator_process import MAESTRO, Operator, free_port, stop
from tests.conftest import Cluster


@pytest.fixture
def start_operator(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> Iterator[Callable[..., Operator]]:
    """Start (and always stop) operator processes serving only the test namespace."""
    # An in-cluster operator watches every namespace, this one too: these tests would
    # measure two operators at once.
    running = cluster.kubectl(
        "get", "pods", "-A", "-l", "app.kubernetes.io/component=operator", "-o", "name"
    ).stdout.split()
    assert not running, f"an in-cluster operator is still running: {running}"
    started: list[Operator] = []

    def start(*peering: str, env: Mapping[str, str] | None = None) -> Operator:
        """`peering`: e.g. ("--peering", name); standalone when empty. `env`: extra
        environment (MAESTRO_* settings)."""
        port = free_port()
        healthz = f"http://127.0.0.1:{port}/healthz"
        log = tmp_path / f"operator-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    str(MAESTRO),
                    "operator",
                    *(peering or ("--standalone",)),
                    "--namespace",
                    namespace,
                    "--liveness",
                    healthz,
                    "--verbose",
                ],
                env={**os.environ, **(env or {}), "KUBECONFIG": str(cluster.kubeconfig)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        operator = Operator(process, log, healthz)
        started.append(operator)

        def healthy() -> bool:
            assert process.poll() is None, f"operator exited:\n{operator.logs()}"
            try:
                with urllib.request.urlopen(healthz, timeout=1) as rsp:
                    return bool(rsp.status == 200)
            except OSError:
                return False

        eventually(healthy, timeout=30, what="the operator's liveness endpoint", interval=0.2)
        return operator

    try:
        yield start
    finally:
        for operator in started:
            stop(operator)


@pytest.fixture(scope="module")
def registered(mlflow_url: str) -> Iterator[tuple[str, Any]]:
    """A registered model with three versions: two good pipelines (they disagree on a few
    rows) and a broken one; the alias ALIAS points at version 1."""
    name = f"md-{uuid.uuid4().hex[:6]}"
    data = load_breast_cancer(as_frame=True)
    features = data.frame.drop(columns=["target"]).astype("float64")
    features.columns = [c.replace(" ", "_") for c in features.columns]
    target = data.frame["target"]
    mlflow.set_tracking_uri(mlflow_url)
    mlflow.set_experiment(f"test-modeldeployment-{name}")
    signature = infer_signature(features.head(5), target.head(5))
    # Requirements are metadata here (the serving pods run in the project's environment);
    # naming them spares MLflow inferring them, several seconds per model.
    sklearn_requirements = [f"scikit-learn=={sklearn.__version__}"]
    for c in (1.0, 0.1):
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=500))
        pipeline.fit(features, target)
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                pipeline,
                name="model",
                signature=signature,
                input_example=features.head(3),
                registered_model_name=name,
                pip_requirements=sklearn_requirements,
            )
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("failing_model.py")),
            signature=signature,
            registered_model_name=name,
            pip_requirements=[f"mlflow=={mlflow.__version__}"],
        )
    client = MlflowClient(mlflow_url, mlflow_url)
    client.set_registered_model_alias(name, ALIAS, "1")
    yield name, features
    client.delete_registered_model(name)


@pytest.fixture(scope="session")
def objectstore(cluster: Cluster) -> LocalObjectStore:
    """The platform's object store (SeaweedFS), which the cluster fixture started."""
    store = LocalObjectStore(ClusterConfig())
    store.credentials()  # fails with how to start it when it never ran
    return store
