"""Optuna tuning workers (`maestro train` with MAESTRO_TUNING) on real PostgreSQL and MLflow."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import psycopg2
import pytest
from mlflow import MlflowClient
from optuna.trial import TrialState

from maestro.localplatform.wait import eventually
from maestro.operators.api.trainingrun import Tuning
from maestro.training import contract
from maestro.training.tuning import create_study, storage_url, summarize
from tests.integration.trainer import MAESTRO, ok, trainer_env, unique

pytestmark = pytest.mark.services

OPTUNA_DB = "postgresql://maestro:maestro@127.0.0.1:5432/optuna"


@pytest.fixture(scope="module")
def optuna_storage() -> str:
    try:
        psycopg2.connect(OPTUNA_DB, connect_timeout=3).close()
    except psycopg2.OperationalError as err:
        pytest.fail(f"PostgreSQL (optuna database) unavailable: {err}; run `make services`")
    return OPTUNA_DB


@pytest.fixture
def study_name(optuna_storage: str) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=name, storage=storage_url(optuna_storage))


def load(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage_url(storage))


def start_worker(env: dict[str, str], index: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(MAESTRO), "train"],
        env={**env, contract.WORKER_INDEX: str(index)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    out, err = proc.communicate(timeout=240)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def tuning_env(
    mlflow_url: str, storage: str, study: str, spec: dict[str, Any], params: dict[str, Any]
) -> tuple[dict[str, str], str]:
    """Do what the operator does (parent run, study), then return the worker environment."""
    client = MlflowClient(mlflow_url)
    experiment_id = client.create_experiment(unique("tune"))
    parent = client.create_run(experiment_id, run_name=study).info.run_id
    create_study(storage_url(storage), study, Tuning.model_validate(spec))
    env = trainer_env(
        mlflow_url,
        MAESTRO_TRAININGRUN=f"ml/{study}",
        MAESTRO_MLFLOW_PARENT_RUN_ID=parent,
        MAESTRO_FRAMEWORK="SKLearn",
        MAESTRO_PARAMS=params,
        MAESTRO_DATASET_URI="sklearn://breast_cancer",
        MAESTRO_OPTUNA_STORAGE=storage,
        MAESTRO_OPTUNA_STUDY=study,
        MAESTRO_TUNING=spec,
    )
    return env, parent


def nested_runs(client: MlflowClient, parent: str) -> list[Any]:
    experiment_id = client.get_run(parent).info.experiment_id
    return list(
        client.search_runs(
            [experiment_id], f"tags.mlflow.parentRunId = '{parent}'", max_results=100
        )
    )


def test_two_workers_share_one_study_of_six_trials(
    mlflow_url: str, optuna_storage: str, study_name: str
) -> None:
    spec = {
        "trials": 6,
        "parallelism": 2,
        "objectives": [{"metric": "accuracy", "direction": "maximize"}],
        "costWeight": 0.001,
        "space": {
            "n_estimators": {"type": "int", "low": 10, "high": 40, "step": 5},
            "max_depth": {"type": "int", "low": 2, "high": 6},
            "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
        },
    }
    env, parent = tuning_env(
        mlflow_url, optuna_storage, study_name, spec, {"model": "random_forest", "steps": 4}
    )
    workers = [start_worker(env, index) for index in (0, 1)]
    results = [ok(finish(w)) for w in workers]

    study = load(optuna_storage, study_name)
    trials = study.get_trials()
    assert len(trials) == 6
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    summary = summarize(study)
    assert summary.finished == 6 and summary.running == 0
    assert results[0]["total"] == results[1]["total"] == 6

    client = MlflowClient(mlflow_url)
    runs = nested_runs(client, parent)
    assert len(runs) == 6
    by_id = {r.info.run_id: r for r in runs}
    for trial in trials:
        run = by_id[trial.user_attrs[contract.TRIAL_ATTR_RUN_ID]]
        assert run.data.tags[contract.TAG_TRIAL_NUMBER] == str(trial.number)
        assert run.data.tags[contract.TAG_TRAININGRUN] == f"ml/{study_name}"
        assert run.data.params["n_estimators"] == str(trial.params["n_estimators"])
        assert trial.user_attrs[contract.TRIAL_ATTR_COST] > 0
        if trial.state is TrialState.COMPLETE:
            # Cost-aware: the objective is accuracy - costWeight x CPU-seconds.
            cost = trial.user_attrs[contract.TRIAL_ATTR_COST]
            assert trial.value == pytest.approx(run.data.metrics["accuracy"] - 0.001 * cost)
            assert run.info.status == "FINISHED"
            models = client.search_logged_models(
                [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
            )
            # Only trials no finished trial dominated store a model; the best always does.
            logged = run.data.tags[contract.TAG_TRIAL_MODEL] == "logged"
            assert bool(models) is logged
            if trial.number == summary.best.number:  # type: ignore[union-attr]
                assert models

    assert summary.best is not None
    parent_run = client.get_run(parent)
    assert parent_run.data.tags[contract.TAG_BEST_TRIAL_NUMBER] == str(summary.best.number)
    assert parent_run.data.tags[contract.TAG_BEST_TRIAL_RUN_ID] == summary.best.run_id
    assert json.loads(parent_run.data.tags[contract.TAG_BEST_TRIAL_PARAMS]) == summary.best.params
    assert parent_run.data.metrics[contract.METRIC_BEST_VALUE] == pytest.approx(
        summary.best.values[0]
    )
    assert json.loads(parent_run.data.tags[contract.TAG_TRIAL_COUNTS])["total"] == 6
    # Workers never end the operator's run: the operator owns its lifecycle.
    assert parent_run.info.status == "RUNNING"


def test_multi_objective_study_records_the_pareto_front(
    mlflow_url: str, optuna_storage: str, study_name: str, tmp_path: Path
) -> None:
    spec = {
        "trials": 6,
        "sampler": "NSGAII",
        "objectives": [
            {"metric": "accuracy", "direction": "maximize"},
            {"metric": "cost", "direction": "minimize"},
        ],
        "space": {"n_estimators": {"type": "int", "low": 5, "high": 60}},
    }
    env, parent = tuning_env(
        mlflow_url, optuna_storage, study_name, spec, {"model": "random_forest"}
    )
    ok(finish(start_worker(env, 0)))

    summary = summarize(load(optuna_storage, study_name))
    assert summary.completed == 6
    assert summary.pareto_front
    client = MlflowClient(mlflow_url)
    path = client.download_artifacts(parent, contract.PARETO_FRONT_ARTIFACT, str(tmp_path))
    front = json.loads(Path(path).read_text())
    assert [p["number"] for p in front] == [t.number for t in summary.pareto_front]
    assert all(len(p["values"]) == 2 and p["run_id"] for p in front)
    tag = client.get_run(parent).data.tags[contract.TAG_PARETO_FRONT]
    assert json.loads(tag) == [t.number for t in summary.pareto_front]


def test_median_pruner_prunes_a_bad_trial(
    mlflow_url: str, optuna_storage: str, study_name: str
) -> None:
    # One worker and a seeded random sampler make the sequence of trials fixed; with a strong
    # regulariser some trials fall below the median accuracy of the first five after an epoch.
    spec = {
        "trials": 10,
        "sampler": "Random",
        "pruner": "Median",
        "objectives": [{"metric": "accuracy", "direction": "maximize"}],
        "space": {"alpha": {"type": "float", "low": 1e-5, "high": 10, "log": True}},
    }
    env, _parent = tuning_env(
        mlflow_url,
        optuna_storage,
        study_name,
        spec,
        {"model": "sgd", "loss": "log_loss", "epochs": 4, "seed": 0},
    )
    ok(finish(start_worker(env, 0)))

    study = load(optuna_storage, study_name)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned
    assert len(study.trials) == 10
    client = MlflowClient(mlflow_url)
    for trial in pruned:
        run = client.get_run(trial.user_attrs[contract.TRIAL_ATTR_RUN_ID])
        assert run.data.tags[contract.TAG_TRIAL_STATE] == "PRUNED"
        assert run.info.status == "KILLED"
        last_step = max(trial.intermediate_values)
        assert last_step < 3  # stopped before the last epoch
        assert client.get_metric_history(run.info.run_id, "accuracy")[-1].step == last_step


def test_worker_whose_every_trial_fails_exits_non_zero(
    mlflow_url: str, optuna_storage: str, study_name: str
) -> None:
    spec = {
        "trials": 3,
        "objectives": [{"metric": "accuracy"}],
        "space": {"n_estimators": {"type": "int", "low": -5, "high": -1}},
    }
    env, parent = tuning_env(mlflow_url, optuna_storage, study_name, spec, {})
    proc = finish(start_worker(env, 0))

    assert proc.returncode == 1
    assert "all 3 trial(s) of this worker failed" in proc.stderr
    assert "n_estimators must be a positive integer" in proc.stderr
    study = load(optuna_storage, study_name)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3
    runs = nested_runs(MlflowClient(mlflow_url), parent)
    assert {r.info.status for r in runs} == {"FAILED"}
    assert all(contract.TAG_ERROR in r.data.tags for r in runs)


TUNING_ERRORS = [
    (
        "objective-not-logged",
        {"objectives": [{"metric": "rmse", "direction": "minimize"}]},
        "objective metric(s) rmse are not logged by the classification trainers",
    ),
    (
        "space-typo",
        {"space": {"n_estimatorz": {"type": "int", "low": 1, "high": 5}}},
        "unknown hyperparameter(s) n_estimatorz",
    ),
    ("bad-spec", {"trials": 0}, "invalid MAESTRO_TUNING"),
]


@pytest.mark.parametrize(
    ("overrides", "message"), [c[1:] for c in TUNING_ERRORS], ids=[c[0] for c in TUNING_ERRORS]
)
def test_bad_tuning_input_exits_2_before_any_trial(
    mlflow_url: str, optuna_storage: str, study_name: str, overrides: dict[str, Any], message: str
) -> None:
    spec: dict[str, Any] = {
        "trials": 3,
        "objectives": [{"metric": "accuracy"}],
        "space": {"n_estimators": {"type": "int", "low": 5, "high": 10}},
    }
    env = trainer_env(
        mlflow_url,
        MAESTRO_DATASET_URI="sklearn://iris",
        MAESTRO_OPTUNA_STORAGE=optuna_storage,
        MAESTRO_OPTUNA_STUDY=study_name,
        MAESTRO_TUNING={**spec, **overrides},
    )
    # As the operator starts them: under its parent run, where the reason is recorded for
    # the TrainingRun's status (the pod's log may be gone by then).
    client = MlflowClient(mlflow_url)
    experiment = client.create_experiment(unique("bad-tuning"))
    parent = client.create_run(experiment).info.run_id
    env[contract.PARENT_RUN_ID] = parent
    proc = finish(start_worker(env, 0))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert message in proc.stderr.strip().splitlines()[-1]
    assert message in client.get_run(parent).data.tags[contract.TAG_ERROR]


def test_a_trial_of_a_killed_worker_is_failed_and_the_study_still_ends(
    mlflow_url: str, optuna_storage: str, study_name: str
) -> None:
    spec = {
        "trials": 3,
        "objectives": [{"metric": "accuracy", "direction": "maximize"}],
        "space": {"n_estimators": {"type": "int", "low": 400, "high": 500}},
    }
    env, _ = tuning_env(
        mlflow_url, optuna_storage, study_name, spec, {"model": "random_forest", "steps": 20}
    )
    env[contract.OPTUNA_HEARTBEAT] = "1"
    doomed = start_worker(env, 0)

    def trial_running() -> bool | None:
        trials = load(optuna_storage, study_name).trials
        return any(t.state is TrialState.RUNNING for t in trials) or None

    try:
        # Killed mid-trial, as a pod evicted or OOM-killed would be: no tell, no cleanup.
        eventually(trial_running, timeout=120, what="the first worker's trial running")
    finally:
        doomed.kill()
        doomed.wait()
    # The replacement pod starts after the dead trial's heartbeat is overdue (2 x 1 s).
    time.sleep(3)
    survivor = ok(finish(start_worker(env, 1)))

    trials = load(optuna_storage, study_name).trials
    states = sorted(t.state.name for t in trials)
    # The killed worker's trial was failed once its heartbeat was overdue; the slots it did
    # not use went to the survivor, so the study ends with its 3 trials and none RUNNING.
    assert states == ["COMPLETE", "COMPLETE", "FAIL"], states
    assert survivor["total"] == 3 and survivor["running"] == 0


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed(
    mlflow_url: str, optuna_storage: str, study_name: str
) -> None:
    spec = {
        "trials": 3,
        "objectives": [{"metric": "accuracy", "direction": "maximize"}],
        "space": {"n_estimators": {"type": "int", "low": 5, "high": 10}},
    }
    env, _ = tuning_env(mlflow_url, optuna_storage, study_name, spec, {"model": "random_forest"})
    env[contract.OPTUNA_HEARTBEAT] = "1"
    # What a worker killed between asking a trial and its first beat leaves behind: a RUNNING
    # trial with no heartbeat, which Optuna's own stale check never fails.
    orphan = load(optuna_storage, study_name).ask()

    survivor = ok(finish(start_worker(env, 0)))

    trials = load(optuna_storage, study_name).trials
    assert trials[orphan.number].state is TrialState.FAIL
    assert sorted(t.state.name for t in trials) == ["COMPLETE", "COMPLETE", "FAIL"]
    assert survivor["total"] == 3 and survivor["running"] == 0
