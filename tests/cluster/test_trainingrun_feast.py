"""A TrainingRun that trains on Feast features, the whole path on the local platform.

A namespace-scoped operator process (configured as manifests/overlays/local configures the
in-cluster one, plus MAESTRO_TRAINER_FEAST) creates the trainer Job; the pod runner runs
`maestro train`, which joins the feature service's features point in time onto the entity
frame from the real Feast repo of the `feast_repo` fixture, tests/conftest.py (parquet offline
store, Redis online store, its own project, torn down afterwards) and logs to the real MLflow.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from mlflow import MlflowClient

from maestro.localplatform.platform import local_operator_env
from maestro.localplatform.wait import eventually
from maestro.training import contract
from maestro.training.feature_repo import FEATURE_SERVICE, FEATURES, TARGET
from tests.cluster.objects import apply, events, get, ready
from tests.cluster.operator_process import Operator
from tests.conftest import Cluster
from tests.feast_repo import REDIS, Repo

pytestmark = pytest.mark.cluster

API_VERSION = "mlops.maestro.dev/v1alpha1"
OPTUNA_STORAGE = "postgresql://maestro:maestro@127.0.0.1:5432/optuna"
DATASET_VERSION = "2025-01-01"


@pytest.fixture
def operator(
    start_operator: Callable[..., Operator],
    feast_repo: Repo,
    mlflow_url: str,
) -> Operator:
    """The operator with the local overlay's settings and this module's Feast repo."""
    feast = {
        "registry": feast_repo.settings.registry or "",
        "redis": REDIS,
        "project": feast_repo.settings.project or "",
    }
    return start_operator(
        env=local_operator_env(
            MAESTRO_MLFLOW_TRACKING_URI=mlflow_url,
            MAESTRO_OPTUNA_STORAGE=OPTUNA_STORAGE,
            MAESTRO_TRAINER_FEAST=json.dumps(feast),
        )
    )


def feast_run(name: str, entities: str, feature_service: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingRun",
        "metadata": {"name": name},
        "spec": {
            "framework": "SKLearn",
            "params": {"model": "random_forest", "n_estimators": 20},
            # With a feature service the dataset is the entity frame: keys, time, label.
            "dataset": {"uri": entities, "version": DATASET_VERSION},
            "featureService": feature_service,
            **spec,
        },
    }


def wait_finished(
    operator: Operator, cluster: Cluster, namespace: str, name: str, timeout: float = 90
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(cluster, namespace, "trainingrun", name)
        status = (obj or {}).get("status") or {}
        return obj if status.get("phase") in ("Succeeded", "Failed") else None

    def why() -> str:
        obj = get(cluster, namespace, "trainingrun", name) or {}
        pods = cluster.kubectl("get", "pods,jobs", "-n", namespace, check=False).stdout
        log = operator.logs().splitlines()[-30:]
        return f"status: {json.dumps(obj.get('status'), indent=1)}\n{pods}\n" + "\n".join(log)

    return eventually(
        probe, timeout=timeout, what=f"TrainingRun {name} finished", why=why, interval=0.5
    )


def trainer_env(cluster: Cluster, namespace: str, run: dict[str, Any]) -> dict[str, str]:
    job = get(cluster, namespace, "job", run["status"]["jobRef"]["name"])
    assert job is not None, run["status"]["jobRef"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_feast_run_trains_on_the_feature_service_and_registers_a_candidate(
    operator: Operator,
    cluster: Cluster,
    namespace: str,
    feast_repo: Repo,
    mlflow_url: str,
) -> None:
    entities = f"file://{feast_repo.entities}"
    model_name = f"cancer-{namespace}"
    apply(
        cluster,
        namespace,
        feast_run("cancer", entities, FEATURE_SERVICE, registerAs={"name": model_name}),
    )
    run = wait_finished(operator, cluster, namespace, "cancer")

    status = run["status"]
    assert status["phase"] == "Succeeded", status
    condition = ready(run)
    assert (condition["status"], condition["reason"]) == ("True", "Succeeded"), condition
    assert status["observedGeneration"] == run["metadata"]["generation"]
    assert status["metrics"]["accuracy"] > 0.85, status["metrics"]

    # The operator handed its Feast settings to the trainer: without them the trainer would
    # read the packaged repo's default project and registry.
    env = trainer_env(cluster, namespace, run)
    assert env[contract.FEATURE_SERVICE] == FEATURE_SERVICE
    assert env[contract.FEAST_REGISTRY] == feast_repo.settings.registry
    assert env[contract.FEAST_REDIS] == REDIS
    assert env[contract.FEAST_PROJECT] == feast_repo.settings.project
    assert contract.FEAST_REPO not in env  # unset: the repo packaged with the trainer

    mlflow = MlflowClient(mlflow_url, mlflow_url)
    logged = mlflow.get_run(status["mlflowRunId"])
    assert logged.info.status == "FINISHED"
    tags = logged.data.tags
    assert tags[contract.TAG_FEATURE_SERVICE] == FEATURE_SERVICE
    assert tags[contract.TAG_DATASET_URI] == entities
    assert tags[contract.TAG_DATASET_VERSION] == DATASET_VERSION
    assert tags[contract.TAG_TRAININGRUN] == f"{namespace}/cancer"
    assert tags[contract.TAG_TRAININGRUN_UID] == run["metadata"]["uid"]
    params = logged.data.params
    assert (params["model"], params["n_estimators"], params["target"]) == (
        "random_forest",
        "20",
        TARGET,
    )
    assert logged.data.metrics["accuracy"] == pytest.approx(status["metrics"]["accuracy"])
    # The logged training data is Feast's join: the service's features and the label (the
    # entity frame itself holds only patient_id, event_timestamp and the label).
    [dataset] = logged.inputs.dataset_inputs
    assert dataset.dataset.source and entities in dataset.dataset.source
    columns = [c["name"] for c in json.loads(dataset.dataset.schema)["mlflow_colspec"]]
    assert columns == [*FEATURES.values(), TARGET]

    version = mlflow.get_model_version_by_alias(model_name, "candidate")
    assert version.version == status["modelVersion"]
    assert version.run_id == status["mlflowRunId"]
    assert status["modelUri"] == f"runs:/{status['mlflowRunId']}/model"

    kinds = [e[1] for e in events(cluster, namespace, "cancer")]
    assert "Running" in kinds and "Succeeded" in kinds, kinds


def test_an_unknown_feature_service_fails_the_run_at_once_naming_it(
    operator: Operator,
    cluster: Cluster,
    namespace: str,
    feast_repo: Repo,
    mlflow_url: str,
) -> None:
    # The default backoffLimit (3) stays: bad input (the trainer's exit code 2) must not be
    # retried, it fails the Job through its pod failure policy.
    apply(cluster, namespace, feast_run("nope", f"file://{feast_repo.entities}", "nope_v9"))
    run = wait_finished(operator, cluster, namespace, "nope", timeout=60)

    status = run["status"]
    assert status["phase"] == "Failed", status
    condition = ready(run)
    assert (condition["status"], condition["reason"]) == ("False", "JobFailed"), condition
    message = condition["message"]
    assert "exit code 2" in message, message
    # The trainer's own words, from the MLflow run: the missing service and the registered.
    assert (
        f"Trainer error: Feast feature service 'nope_v9' is not registered in project"
        f" {feast_repo.settings.project!r} (registered: {FEATURE_SERVICE})"
    ) in message, message
    assert status["completionTime"] >= status["startTime"]
    assert "modelVersion" not in status

    job = get(cluster, namespace, "job", status["jobRef"]["name"])
    assert job is not None
    assert job["status"]["failed"] == 1, job["status"]  # no retry
    [failed] = [c for c in job["status"]["conditions"] if c["type"] == "Failed"]
    assert failed["reason"] == "PodFailurePolicy", failed

    logged = MlflowClient(mlflow_url, mlflow_url).get_run(status["mlflowRunId"])
    assert logged.info.status == "FAILED"
    assert "'nope_v9'" in logged.data.tags[contract.TAG_ERROR]
    assert logged.data.tags[contract.TAG_FEATURE_SERVICE] == "nope_v9"  # lineage of the attempt
    assert ("Warning", "JobFailed") in [e[:2] for e in events(cluster, namespace, "nope")]
