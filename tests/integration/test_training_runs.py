"""`maestro train` as a TrainingRun pod runs it, against the real MLflow server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from maestro.training import contract
from tests.integration.trainer import maestro_train, ok, trainer_env, unique

pytestmark = pytest.mark.services


@pytest.fixture(autouse=True)
def tracking_uri(mlflow_url: str) -> Iterator[None]:
    """mlflow.models/pyfunc read the global tracking URI (else a local sqlite file)."""
    previous = mlflow.get_tracking_uri() if "MLFLOW_TRACKING_URI" in os.environ else None
    mlflow.set_tracking_uri(mlflow_url)
    yield
    mlflow.set_tracking_uri(previous)


def test_sklearn_training_logs_params_metrics_model_and_lineage(mlflow_url: str) -> None:
    experiment = unique("train-sklearn")
    env = trainer_env(
        mlflow_url,
        MLFLOW_EXPERIMENT_NAME=experiment,
        MAESTRO_TRAININGRUN="ml/iris-forest",
        MAESTRO_TRAININGRUN_UID="uid-123",
        MAESTRO_FRAMEWORK="SKLearn",
        MAESTRO_PARAMS={"model": "random_forest", "n_estimators": 30, "max_depth": "4"},
        MAESTRO_DATASET_URI="sklearn://iris",
        MAESTRO_DATASET_VERSION="v1",
        MAESTRO_SEED="7",
    )
    result = ok(maestro_train(env))

    client = MlflowClient(mlflow_url)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == experiment
    assert run.data.params["n_estimators"] == "30"
    assert run.data.params["model"] == "random_forest"
    assert run.data.params["seed"] == "7"
    assert {"accuracy", "f1", "roc_auc", "cost"} <= set(run.data.metrics)
    assert run.data.metrics["accuracy"] > 0.8
    assert run.data.metrics == pytest.approx(result["metrics"])
    # Per-step metrics: one per chunk of trees, then the final value at the last step.
    history = client.get_metric_history(run.info.run_id, "accuracy")
    assert sorted({m.step for m in history}) == list(range(10))
    tags = run.data.tags
    assert tags[contract.TAG_TRAININGRUN] == "ml/iris-forest"
    assert tags[contract.TAG_TRAININGRUN_UID] == "uid-123"
    assert tags[contract.TAG_DATASET_URI] == "sklearn://iris"
    assert tags[contract.TAG_DATASET_VERSION] == "v1"
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["iris@v1"]

    model_uri = f"runs:/{run.info.run_id}/{contract.MODEL_ARTIFACT_PATH}"
    info = mlflow.models.get_model_info(model_uri)
    assert info.signature is not None
    assert info.signature.inputs.input_names()[0] == "sepal length (cm)"
    assert info.saved_input_example_info is not None
    model = mlflow.pyfunc.load_model(model_uri)
    features = pd.DataFrame([[5.1, 3.5, 1.4, 0.2]], columns=info.signature.inputs.input_names())
    assert list(model.predict(features)) == [0]


def test_training_is_deterministic_with_the_seed(mlflow_url: str) -> None:
    values = dict(
        MLFLOW_EXPERIMENT_NAME=unique("train-seed"),
        MAESTRO_PARAMS={"model": "sgd", "epochs": 5},
        MAESTRO_DATASET_URI="sklearn://breast_cancer",
        MAESTRO_SEED="3",
    )
    first = ok(maestro_train(trainer_env(mlflow_url, **values)))
    second = ok(maestro_train(trainer_env(mlflow_url, **values)))
    del first["metrics"]["cost"], second["metrics"]["cost"]
    assert first["metrics"] == second["metrics"]


def test_training_logs_into_the_operators_parent_run(mlflow_url: str, tmp_path: Path) -> None:
    client = MlflowClient(mlflow_url)
    experiment_id = client.create_experiment(unique("train-parent"))
    parent = client.create_run(experiment_id, run_name="ml-diabetes").info.run_id
    data = tmp_path / "diabetes.parquet"
    frame = pd.DataFrame({"a": range(60), "b": [i % 7 for i in range(60)]}, dtype=float)
    frame["y"] = frame.a * 2.0 + frame.b
    frame.to_parquet(data)
    env = trainer_env(
        mlflow_url,
        MAESTRO_MLFLOW_PARENT_RUN_ID=parent,
        MAESTRO_TRAININGRUN="ml/diabetes",
        MAESTRO_FRAMEWORK="XGBoost",
        MAESTRO_PARAMS={"n_estimators": 20, "max_depth": 3, "target": "y"},
        MAESTRO_DATASET_URI=data.as_uri(),
    )
    result = ok(maestro_train(env))

    assert result["run_id"] == parent
    run = client.get_run(parent)
    assert run.info.status == "FINISHED"
    assert {"rmse", "mae", "r2"} <= set(run.data.metrics)
    assert len(client.get_metric_history(parent, "rmse")) == 21  # 20 rounds + final
    assert run.data.params["target"] == "y"
    assert run.data.tags[contract.TAG_DATASET_URI] == data.as_uri()
    info = mlflow.models.get_model_info(f"runs:/{parent}/{contract.MODEL_ARTIFACT_PATH}")
    assert "xgboost" in info.flavors
    model = mlflow.pyfunc.load_model(f"runs:/{parent}/{contract.MODEL_ARTIFACT_PATH}")
    assert model.predict(frame[["a", "b"]].head(2)).shape == (2,)


FAILURES = [
    (
        "unknown-hyperparameter",
        {"MAESTRO_PARAMS": {"n_estimatorz": 5}, "MAESTRO_DATASET_URI": "sklearn://iris"},
        "unknown hyperparameter(s) n_estimatorz for RandomForestClassifier",
    ),
    (
        "missing-dataset",
        {"MAESTRO_DATASET_URI": "/nonexistent/train.parquet"},
        "dataset not found: /nonexistent/train.parquet",
    ),
    ("no-dataset", {}, "no dataset: set spec.dataset.uri (MAESTRO_DATASET_URI)"),
    (
        "wrong-target",
        {"MAESTRO_PARAMS": {"target": "label"}, "MAESTRO_DATASET_URI": "sklearn://wine"},
        "target column 'label' is not in the dataset",
    ),
    ("bad-params-json", {"MAESTRO_PARAMS": "{oops"}, "bad trainer environment"),
]


@pytest.mark.parametrize(
    ("values", "message"), [c[1:] for c in FAILURES], ids=[c[0] for c in FAILURES]
)
def test_bad_input_exits_2_with_a_clear_message(
    mlflow_url: str, values: dict[str, Any], message: str
) -> None:
    proc = maestro_train(trainer_env(mlflow_url, MLFLOW_EXPERIMENT_NAME=unique("bad"), **values))
    assert proc.returncode == 2, proc.stderr[-4000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    assert message in last
    assert "Traceback" not in proc.stderr
