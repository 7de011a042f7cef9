"""TrainingRuns end to end on the local platform.

The operator is deployed from manifests/overlays/local (so it holds exactly the RBAC of
manifests/base); the pod runner runs the trainer pods as processes; MLflow and the
Optuna storage are the real services on PostgreSQL. Assertions read the TrainingRun's
status and Events, and MLflow and Optuna themselves.
"""

from __future__ import annotations

import json
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient

from maestro.localplatform import platform
from maestro.localplatform.cluster import ClusterConfig
from maestro.localplatform.wait import eventually
from tests.cluster.objects import apply, events, get, ready
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

API_VERSION = "mlops.maestro.dev/v1alpha1"
OPTUNA_STORAGE = "postgresql+psycopg2://maestro:maestro@127.0.0.1:5432/optuna"
IRIS = {"uri": "sklearn://iris"}


@pytest.fixture
def mlflow(mlflow_url: str) -> MlflowClient:
    return MlflowClient(mlflow_url, mlflow_url)


def training_run(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingRun",
        "metadata": {"name": name},
        "spec": spec,
    }


def wait_phase(
    cfg: ClusterConfig,
    cluster: Cluster,
    namespace: str,
    name: str,
    phases: tuple[str, ...],
    timeout: float = 60,
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(cluster, namespace, "trainingrun", name)
        status = (obj or {}).get("status") or {}
        return obj if status.get("phase") in phases else None

    def why() -> str:
        obj = get(cluster, namespace, "trainingrun", name) or {}
        pods = cluster.kubectl("get", "pods,jobs", "-n", namespace, check=False).stdout
        return (
            f"status: {json.dumps(obj.get('status'), indent=1)}\n{pods}\n"
            f"operator log:\n{platform.operator_log(cfg, lines=30)}"
        )

    return eventually(
        probe, timeout=timeout, what=f"TrainingRun {name} in {phases}", why=why, interval=0.5
    )


def owned_job(cluster: Cluster, namespace: str, run: dict[str, Any]) -> dict[str, Any]:
    ref = run["status"]["jobRef"]
    job = get(
        cluster, namespace, f"{ref['kind'].lower()}s.{ref['apiVersion'].split('/')[0]}", ref["name"]
    )
    assert job is not None, ref
    (owner,) = job["metadata"]["ownerReferences"]
    assert owner["uid"] == run["metadata"]["uid"] and owner["controller"], owner
    return job


def test_sklearn_run_trains_registers_a_candidate_and_cleans_up_on_delete(
    deployed_operator: ClusterConfig, cluster: Cluster, namespace: str, mlflow: MlflowClient
) -> None:
    model_name = f"iris-{namespace}"
    apply(
        cluster,
        namespace,
        training_run(
            "iris",
            framework="SKLearn",
            params={"model": "random_forest", "n_estimators": 20},
            dataset=IRIS,
            registerAs={"name": model_name},
        ),
    )
    run = wait_phase(deployed_operator, cluster, namespace, "iris", ("Succeeded", "Failed"))
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    assert ready(run)["status"] == "True" and ready(run)["reason"] == "Succeeded"
    assert status["startTime"] <= status["completionTime"]
    assert status["metrics"]["accuracy"] > 0.8, status["metrics"]

    # The model is registered from the run the operator created, with the candidate alias.
    version = mlflow.get_model_version_by_alias(model_name, "candidate")
    assert version.version == status["modelVersion"]
    assert version.run_id == status["mlflowRunId"]
    parent = mlflow.get_run(status["mlflowRunId"])
    assert parent.data.tags["maestro.trainingrun"] == f"{namespace}/iris"
    assert parent.data.tags["maestro.trainingrun.uid"] == run["metadata"]["uid"]
    assert mlflow.get_experiment(parent.info.experiment_id).name == namespace
    with pytest.raises(Exception, match="champion"):
        mlflow.get_model_version_by_alias(model_name, "champion")

    kinds = [e[1] for e in events(cluster, namespace, "iris")]
    assert "Running" in kinds and "Succeeded" in kinds, kinds

    job = owned_job(cluster, namespace, run)
    assert job["spec"]["completionMode"] == "Indexed"

    # Deleting the run deletes its Job (garbage collector); the MLflow run stays.
    cluster.kubectl("delete", "trainingrun", "iris", "-n", namespace)
    eventually(
        lambda: get(cluster, namespace, "job", job["metadata"]["name"]) is None,
        timeout=30,
        what="the Job deleted with its TrainingRun",
    )
    assert mlflow.get_run(status["mlflowRunId"]).info.lifecycle_stage == "active"


def test_tuning_runs_8_trials_on_2_workers_sharing_one_study(
    deployed_operator: ClusterConfig, cluster: Cluster, namespace: str, mlflow: MlflowClient
) -> None:
    apply(
        cluster,
        namespace,
        training_run(
            "tune",
            framework="SKLearn",
            params={"model": "random_forest", "n_estimators": 10},
            dataset=IRIS,
            registerAs={"name": f"iris-{namespace}", "alias": "tuned"},
            tuning={
                "trials": 8,
                "parallelism": 2,
                "objectives": [{"metric": "accuracy", "direction": "maximize"}],
                "space": {
                    "max_depth": {"type": "int", "low": 1, "high": 6},
                    "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
                },
            },
        ),
    )
    run = wait_phase(
        deployed_operator, cluster, namespace, "tune", ("Succeeded", "Failed"), timeout=90
    )
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    trials = status["trials"]
    assert trials["total"] == 8
    assert trials["completed"] + trials["pruned"] + trials["failed"] == 8, trials
    assert trials["completed"] >= 1

    job = owned_job(cluster, namespace, run)
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == 2

    study = optuna.load_study(study_name=status["study"], storage=OPTUNA_STORAGE)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 8
    best = status["bestTrial"]
    # Ties for the best value go to the earliest trial, whose model is the one logged.
    assert best["number"] == min(t.number for t in study.best_trials)
    assert best["values"] == [pytest.approx(study.best_value)]
    assert set(best["params"]) == {"max_depth", "criterion"}

    # Each trial is an MLflow run nested under the TrainingRun's run.
    nested = mlflow.search_runs(
        [mlflow.get_run(status["mlflowRunId"]).info.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{status['mlflowRunId']}'",
    )
    assert len(nested) == 8
    assert best["mlflowRunId"] in {r.info.run_id for r in nested}
    version = mlflow.get_model_version_by_alias(f"iris-{namespace}", "tuned")
    assert version.run_id == best["mlflowRunId"] and version.version == status["modelVersion"]
    assert status["metrics"]["accuracy"] == pytest.approx(study.best_value)


def test_multi_objective_tuning_reports_the_pareto_front(
    deployed_operator: ClusterConfig, cluster: Cluster, namespace: str
) -> None:
    apply(
        cluster,
        namespace,
        training_run(
            "pareto",
            framework="SKLearn",
            params={"model": "random_forest"},
            dataset=IRIS,
            tuning={
                "trials": 6,
                "parallelism": 2,
                "sampler": "NSGAII",
                "objectives": [
                    {"metric": "accuracy", "direction": "maximize"},
                    {"metric": "log_loss", "direction": "minimize"},
                ],
                "space": {"n_estimators": {"type": "int", "low": 2, "high": 30}},
            },
        ),
    )
    run = wait_phase(
        deployed_operator, cluster, namespace, "pareto", ("Succeeded", "Failed"), timeout=90
    )
    status = run["status"]
    assert status["phase"] == "Succeeded", status
    assert "bestTrial" not in status
    front = status["paretoFront"]
    study = optuna.load_study(study_name=status["study"], storage=OPTUNA_STORAGE)
    assert sorted(t["number"] for t in front) == sorted(t.number for t in study.best_trials)
    for point in front:
        assert len(point["values"]) == 2 and point["mlflowRunId"]


def test_a_failing_trainer_fails_the_run_with_the_reason_and_exit_code(
    deployed_operator: ClusterConfig, cluster: Cluster, namespace: str
) -> None:
    apply(
        cluster,
        namespace,
        training_run(
            "broken",
            framework="Generic",
            command=["python", "-c", "import sys; print('no data'); sys.exit(3)"],
            backoffLimit=0,
        ),
    )
    run = wait_phase(deployed_operator, cluster, namespace, "broken", ("Succeeded", "Failed"))
    assert run["status"]["phase"] == "Failed"
    condition = ready(run)
    assert (condition["status"], condition["reason"]) == ("False", "BackoffLimitExceeded")
    assert "exited with code 3" in condition["message"], condition["message"]
    assert ("Warning", "BackoffLimitExceeded") in [
        e[:2] for e in events(cluster, namespace, "broken")
    ]


def test_runs_beyond_the_namespace_limit_queue_and_start_in_order(
    deployed_operator: ClusterConfig, cluster: Cluster, namespace: str
) -> None:
    sleep = ["python", "-c", "import time; time.sleep(3)"]
    names = [f"r{i}" for i in range(5)]  # the local operator allows 4 at once
    apply(cluster, namespace, *(training_run(n, framework="Generic", command=sleep) for n in names))
    runs = [
        wait_phase(deployed_operator, cluster, namespace, n, ("Succeeded", "Failed")) for n in names
    ]
    assert all(r["status"]["phase"] == "Succeeded" for r in runs), [r["status"] for r in runs]
    queued = [
        r
        for r in runs
        if ("Normal", "Queued")
        in [e[:2] for e in events(cluster, namespace, r["metadata"]["name"])]
    ]
    assert len(queued) == 1, [r["metadata"]["name"] for r in queued]
    # It started only once another had finished.
    others = [r for r in runs if r is not queued[0]]
    assert queued[0]["status"]["startTime"] >= min(r["status"]["completionTime"] for r in others)


def test_champion_alias_is_refused(
    deployed_operator: ClusterConfig, cluster: Cluster, namespace: str
) -> None:
    apply(
        cluster,
        namespace,
        training_run(
            "promote",
            framework="Generic",
            command=["python", "-c", "pass"],
            registerAs={"name": "iris", "alias": "champion"},
        ),
    )
    run = wait_phase(deployed_operator, cluster, namespace, "promote", ("Failed",), timeout=20)
    assert ready(run)["reason"] == "AliasNotAllowed"
    assert "jobRef" not in run["status"] and "mlflowRunId" not in run["status"]
