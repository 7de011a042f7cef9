"""`maestro lineage` against the real MLflow server: a small sklearn model logged with the
trainer's lineage tags and a dataset input, read back by `gather` and `run`. The
ModelDeployments serving a version are read from the local cluster in
tests/cluster/test_modeldeployment_approval.py."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from maestro.governance.lineage import (
    Lineage,
    gather,
    list_modeldeployments,
    run,
)
from maestro.training import contract
from tests.cluster.operator_process import free_port
from tests.integration.trainer import unique

pytestmark = pytest.mark.services

DATA_URL = "https://data.example/iris/iris.csv"
COMMIT = "9fceb02d0ae598e95dc970b74767f19372d61af8"
LINEAGE_TAGS = {
    contract.TAG_TRAININGRUN: "ml/iris-train",
    contract.TAG_TRAININGRUN_UID: "0b7c5a1e-3f4d-4c1b-9a2e-5d6f7a8b9c0d",
    contract.TAG_DATASET_URI: DATA_URL,
    contract.TAG_DATASET_VERSION: "v1",
    contract.TAG_FEATURE_SERVICE: "iris_fs",
}


@pytest.fixture(autouse=True)
def tracking_uri(mlflow_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The fluent API (start_run, log_model) reads the global tracking URI."""
    # As the trainer does: no uv.lock of the working directory added to each model.
    monkeypatch.setenv("MLFLOW_UV_AUTO_DETECT", "false")
    previous = mlflow.get_tracking_uri() if "MLFLOW_TRACKING_URI" in os.environ else None
    mlflow.set_tracking_uri(mlflow_url)
    mlflow.set_experiment(unique("lineage"))
    yield
    mlflow.set_tracking_uri(previous)


@pytest.fixture
def client(mlflow_url: str) -> MlflowClient:
    return MlflowClient(tracking_uri=mlflow_url, registry_uri=mlflow_url)


@pytest.fixture
def model_name(client: MlflowClient) -> Iterator[str]:
    name = unique("lineage-iris")
    yield name
    with contextlib.suppress(MlflowException):
        client.delete_registered_model(name)


@pytest.fixture
def no_kubeconfig(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))


def iris() -> pd.DataFrame:
    frame = load_iris(as_frame=True).frame
    assert isinstance(frame, pd.DataFrame)
    # Float labels: MLflow warns that an integer column cannot hold missing values.
    return frame.astype({"target": "float64"})


def log_data(frame: pd.DataFrame) -> str:
    """The training data as the active run's input; returns MLflow's digest of it."""
    dataset = mlflow.data.from_pandas(frame, source=DATA_URL, targets="target", name="iris@v1")
    mlflow.log_input(dataset, context="training")
    return str(dataset.digest)


def log_model(frame: pd.DataFrame, name: str) -> str:
    """A small sklearn model, registered as a new version of `name`; returns the version."""
    features = frame.drop(columns="target")
    model = LogisticRegression(max_iter=200).fit(features, frame["target"])
    info = mlflow.sklearn.log_model(
        model,
        name=contract.MODEL_ARTIFACT_PATH,
        registered_model_name=name,
        # Given, so MLflow starts no subprocess to infer them.
        pip_requirements=["scikit-learn"],
    )
    assert info.registered_model_version is not None
    return str(info.registered_model_version)


def test_gather_reads_data_run_code_and_version(
    client: MlflowClient, model_name: str, no_kubeconfig: None
) -> None:
    frame = iris()
    tags = {**LINEAGE_TAGS, "mlflow.source.git.commit": COMMIT}
    with mlflow.start_run(tags=tags) as active:
        mlflow.log_params({"C": 1.0, "max_iter": 200})
        digest = log_data(frame)
        version = log_model(frame, model_name)
    client.set_registered_model_alias(model_name, "champion", version)

    lineage = gather(client, model_name, version, list_modeldeployments)

    run_id = active.info.run_id
    assert lineage.dataset is not None
    assert (lineage.dataset.uri, lineage.dataset.version) == (DATA_URL, "v1")
    assert (lineage.dataset.name, lineage.dataset.digest) == ("iris@v1", digest)
    assert lineage.feature_service == "iris_fs"
    assert lineage.training is not None
    assert lineage.training.run_id == lineage.training.lineage_run_id == run_id
    assert lineage.training.params == {"C": "1.0", "max_iter": "200"}
    assert lineage.training.trainingrun == "ml/iris-train"
    assert lineage.training.trainingrun_uid == LINEAGE_TAGS[contract.TAG_TRAININGRUN_UID]
    assert lineage.training.tags[contract.TAG_DATASET_URI] == DATA_URL
    assert lineage.training.status == "FINISHED"
    assert lineage.code.git_commit == COMMIT
    assert (lineage.model.name, lineage.model.version) == (model_name, version)
    assert lineage.model.run_id == run_id
    assert lineage.model.aliases == ("champion",)
    assert lineage.model.created_at is not None
    # No kubeconfig: unknown, with the reason, never "none".
    assert not lineage.deployments.known
    assert lineage.deployments.reason is not None
    assert "no kubeconfig" in lineage.deployments.reason
    assert lineage.deployments.serving == ()

    # The deployments the cluster reports are matched on the operator's resolved URIs.
    serving = {
        "metadata": {"namespace": "ml", "name": "iris"},
        "status": {"stableRevision": "r1", "stableModelUri": f"models:/{model_name}/{version}"},
    }
    other = {"metadata": {"namespace": "ml", "name": "x"}, "status": {"stableModelUri": "s3://m"}}
    found = gather(client, model_name, version, lambda: [serving, other]).deployments
    assert found.known
    assert [(s.namespace, s.deployment, s.revision) for s in found.serving] == [
        ("ml", "iris", "r1")
    ]


def test_a_trial_run_takes_the_lineage_its_parent_carries(
    client: MlflowClient, model_name: str, no_kubeconfig: None
) -> None:
    """A tuning study's run holds the dataset input; its trials hold the trial's params."""
    frame = iris()
    with mlflow.start_run(tags=LINEAGE_TAGS) as parent:
        digest = log_data(frame)
        trial_tags = {contract.TAG_TRIAL_NUMBER: "3", contract.TAG_TRAININGRUN: "ml/iris-tune"}
        with mlflow.start_run(nested=True, tags=trial_tags) as trial:
            mlflow.log_params({"C": 0.5})
            version = log_model(frame, model_name)

    lineage = gather(client, model_name, version, list_modeldeployments)

    assert lineage.training is not None
    assert lineage.training.run_id == trial.info.run_id
    assert lineage.training.parent_run_id == lineage.training.lineage_run_id == parent.info.run_id
    assert lineage.training.params == {"C": "0.5"}
    # The trial's own tag wins; what it lacks comes from the parent.
    assert lineage.training.trainingrun == "ml/iris-tune"
    assert lineage.dataset is not None
    assert (lineage.dataset.uri, lineage.dataset.digest) == (DATA_URL, digest)
    assert lineage.feature_service == "iris_fs"


def test_run_prints_the_lineage_in_each_format(
    mlflow_url: str, model_name: str, no_kubeconfig: None, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = iris()
    with mlflow.start_run(tags=LINEAGE_TAGS):
        log_data(frame)
        version = log_model(frame, model_name)
    capsys.readouterr()  # MLflow's messages while logging

    out = io.StringIO()
    assert run(mlflow_url, model_name, version, "json", out) == 0
    lineage = Lineage.model_validate(json.loads(out.getvalue()))
    assert lineage.model.version == version and not lineage.deployments.known
    for fmt, start in (("mermaid", "graph LR\n"), ("dot", "digraph lineage {\n")):
        out = io.StringIO()
        assert run(mlflow_url, model_name, version, fmt, out) == 0
        assert out.getvalue().startswith(start)
        assert "deployments unknown" in out.getvalue()
    assert capsys.readouterr().err == ""


def test_unknown_model_version_or_format_is_bad_input(
    mlflow_url: str, model_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = iris()
    with mlflow.start_run():
        version = log_model(frame, model_name)
    capsys.readouterr()  # MLflow's messages while logging
    missing = str(int(version) + 5)
    cases = [
        ((unique("no-such-model"), "1", "json"), "no registered model named"),
        (
            (model_name, missing, "json"),
            f"registered model {model_name!r} has no version {missing}",
        ),
        ((model_name, "latest", "json"), "is not a version number"),
        ((model_name, version, "yaml"), "unknown format 'yaml'"),
    ]
    for (name, asked, fmt), said in cases:
        out = io.StringIO()
        assert run(mlflow_url, name, asked, fmt, out) == 2, (name, asked, fmt)
        err = capsys.readouterr().err
        assert err.startswith("error: ") and said in err, err
        assert out.getvalue() == ""


def test_unreachable_mlflow_is_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    out = io.StringIO()
    assert run(f"http://ci:s3cret@127.0.0.1:{free_port()}", "iris", "1", "json", out) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: MLflow is unreachable"), err
    assert "s3cret" not in err and "ci:***@" in err
    assert out.getvalue() == ""
