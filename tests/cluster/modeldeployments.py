"""What the ModelDeployment cluster tests share: the registered model they deploy, and
waiting on a ModelDeployment's status."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import mlflow
import pytest
import sklearn
from mlflow import MlflowClient
from mlflow.models import infer_signature
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.cluster.objects import get
from tests.conftest import Cluster
from tests.harness.wait import eventually

REPO = Path(__file__).resolve().parents[2]
API_VERSION = "mlops.maestro.dev/v1alpha1"
ALIAS = "production"


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


class Summarised(Protocol):
    def summary(self) -> str: ...


def wait_status(
    cluster: Cluster,
    namespace: str,
    name: str,
    what: str,
    check: Callable[[dict[str, Any]], Any],
    timeout: float = 90,
    mesh: Summarised | None = None,
) -> dict[str, Any]:
    """The ModelDeployment once `check(status)` holds; fails with the last status seen."""
    seen: list[Any] = [None]

    def probe() -> dict[str, Any] | None:
        obj = get(cluster, namespace, "modeldeployment", name)
        seen[0] = status = (obj or {}).get("status") or {}
        return obj if check(status) else None

    def why() -> str:
        return f"status: {seen[0]}\n{mesh.summary() if mesh else ''}"

    return eventually(probe, timeout=timeout, what=what, why=why, interval=0.5)
