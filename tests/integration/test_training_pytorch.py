"""`maestro train` with framework PyTorch: two DDP replicas as a PyTorchJob runs them (the
environment Kubeflow injects, on loopback), and a single process twice, against real MLflow."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer

from maestro.training import contract
from maestro.training.torch_trainer import TAG_PARAMETERS_SHA256, TAG_WORLD_SIZE
from tests.integration.trainer import MAESTRO, ok, trainer_env, unique

pytestmark = pytest.mark.services

DATASET = "sklearn://breast_cancer"
TRAIN_ROWS = 426  # 569 rows, test_size 0.25
EPOCHS = 4
PARAMS = {"hidden_sizes": "16,8", "epochs": EPOCHS, "batch_size": 32, "lr": 0.01}
DDP_VARIABLES = ("WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT")


def free_port(first: int = 29500, last: int = 29599) -> int:
    """A port for the rendezvous, in the range PyTorch jobs conventionally use."""
    for port in range(first, last + 1):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {first}-{last} for MASTER_PORT")


def start(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(MAESTRO), "train"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], name: str) -> dict[str, Any]:
    try:
        stdout, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(f"{name} did not finish: {stderr[-4000:]}") from None
    assert proc.returncode == 0, f"{name} exited {proc.returncode}: {stderr[-4000:]}"
    result = ok(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    result["stderr"] = stderr
    return result


@dataclass
class Runs:
    ddp_experiment: str
    single_experiment: str
    ranks: list[dict[str, Any]]
    singles: list[dict[str, Any]]


@pytest.fixture(scope="module")
def runs(mlflow_url: str) -> Iterator[Runs]:
    """Both DDP replicas and two single-process runs with the same seed, all at once."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_url)
    ddp_experiment, single_experiment = unique("torch-ddp"), unique("torch-single")

    def env(experiment: str, **extra: str) -> dict[str, str]:
        values = trainer_env(
            mlflow_url,
            MLFLOW_EXPERIMENT_NAME=experiment,
            MAESTRO_TRAININGRUN="ml/cancer-mlp",
            MAESTRO_FRAMEWORK="PyTorch",
            MAESTRO_PARAMS=PARAMS,
            MAESTRO_DATASET_URI=DATASET,
            MAESTRO_SEED="3",
            # One thread per process, as torchrun sets it: four trainers share this machine.
            OMP_NUM_THREADS="1",
        )
        for name in DDP_VARIABLES:
            values.pop(name, None)
        return {**values, **extra}

    port = str(free_port())
    ddp = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    procs = [start(env(ddp_experiment, **ddp, RANK=str(rank))) for rank in (0, 1)]
    procs += [start(env(single_experiment)) for _ in range(2)]
    names = ["rank 0", "rank 1", "single run 1", "single run 2"]
    try:
        results = [finish(proc, name) for proc, name in zip(procs, names, strict=True)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    yield Runs(ddp_experiment, single_experiment, results[:2], results[2:])
    mlflow.set_tracking_uri(previous)


def test_ddp_replicas_train_in_step_and_rank_0_alone_logs(runs: Runs, mlflow_url: str) -> None:
    main, worker = runs.ranks
    assert (main["rank"], worker["rank"]) == (0, 1)
    assert main["world_size"] == worker["world_size"] == 2
    # Each replica trained on its half of the rows, yet both ended with the same weights:
    # the gradients were all-reduced at every step.
    assert main["shard_rows"] == worker["shard_rows"] == math.ceil(TRAIN_ROWS / 2)
    assert main["parameters_sha256"] == worker["parameters_sha256"]
    for result in (main, worker):
        assert f"rank {result['rank']} of 2 trained on 213 rows per epoch" in result["stderr"]
        assert result["parameters_sha256"] in result["stderr"]
    # Rank 1 evaluated the same held-out split with the same weights, and logged nothing.
    assert worker["run_id"] is None and worker["model_uri"] is None
    assert {k: v for k, v in main["metrics"].items() if k != contract.METRIC_COST} == (
        worker["metrics"]
    )

    client = MlflowClient(mlflow_url)
    experiment = client.get_experiment_by_name(runs.ddp_experiment)
    assert experiment is not None
    logged = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in logged] == [main["run_id"]]
    run = logged[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags[TAG_WORLD_SIZE] == "2"
    assert run.data.tags["maestro.framework"] == "PyTorch"
    assert run.data.tags[TAG_PARAMETERS_SHA256] == main["parameters_sha256"]
    assert run.data.tags[contract.TAG_TRAININGRUN] == "ml/cancer-mlp"
    assert run.data.tags[contract.TAG_DATASET_URI] == DATASET
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["breast_cancer"]
    params = run.data.params
    assert params["model"] == "mlp"
    assert params["hidden_sizes"] == "16,8"
    assert params["epochs"] == str(EPOCHS)
    assert params["batch_size"] == "32"
    assert params["seed"] == "3"
    assert params["task"] == "classification"
    # The final metrics, plus the last epoch's training loss.
    assert set(run.data.metrics) == {*main["metrics"], "train_loss"}
    assert {k: run.data.metrics[k] for k in main["metrics"]} == pytest.approx(main["metrics"])
    assert run.data.metrics["accuracy"] > 0.9
    # Per epoch: the training loss over both replicas' rows, and the held-out metrics.
    for name in ("train_loss", "accuracy", "roc_auc"):
        history = client.get_metric_history(run.info.run_id, name)
        assert sorted({m.step for m in history}) == list(range(EPOCHS)), name
    losses = sorted(client.get_metric_history(run.info.run_id, "train_loss"), key=lambda m: m.step)
    assert losses[-1].value < losses[0].value


def test_ddp_model_is_servable_as_pyfunc(runs: Runs) -> None:
    main = runs.ranks[0]
    model_uri = f"runs:/{main['run_id']}/{contract.MODEL_ARTIFACT_PATH}"
    info = mlflow.models.get_model_info(model_uri)
    assert info.signature is not None
    assert info.signature.inputs.input_names()[0] == "mean radius"
    assert info.saved_input_example_info is not None
    assert any(r.startswith("torch==") for r in _requirements(model_uri))
    cancer = load_breast_cancer(as_frame=True)
    features = cancer.frame.drop(columns=["target"])
    predicted = mlflow.pyfunc.load_model(model_uri).predict(features)
    assert len(predicted) == len(features)
    assert set(predicted) <= {0, 1}
    assert (predicted == cancer.frame["target"].to_numpy()).mean() > 0.9


def _requirements(model_uri: str) -> list[str]:
    path = mlflow.artifacts.download_artifacts(f"{model_uri}/requirements.txt")
    with open(path) as lines:
        return [line.strip() for line in lines if line.strip()]


def test_ddp_model_loads_without_maestro(runs: Runs, mlflow_url: str) -> None:
    """The model's classes are pickled by value: torch, pandas and MLflow suffice."""
    model_uri = f"runs:/{runs.ranks[0]['run_id']}/{contract.MODEL_ARTIFACT_PATH}"
    script = (
        "import json, sys\n"
        "sys.modules['maestro'] = None  # any import of maestro now fails\n"
        "import mlflow.pyfunc, pandas as pd\n"
        "frame = pd.read_json(sys.stdin, orient='split')\n"
        f"model = mlflow.pyfunc.load_model({model_uri!r})\n"
        "print(json.dumps(model.predict(frame).tolist()))\n"
    )
    cancer = load_breast_cancer(as_frame=True)
    rows = cancer.frame.drop(columns=["target"]).head(20)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        input=rows.to_json(orient="split"),
        env=trainer_env(mlflow_url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    in_process = mlflow.pyfunc.load_model(model_uri).predict(rows)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == in_process.tolist()


def test_single_process_training_is_deterministic(runs: Runs, mlflow_url: str) -> None:
    first, second = runs.singles
    assert first["world_size"] == second["world_size"] == 1
    assert first["shard_rows"] == TRAIN_ROWS
    assert first["run_id"] != second["run_id"]
    assert first["parameters_sha256"] == second["parameters_sha256"]
    del first["metrics"][contract.METRIC_COST], second["metrics"][contract.METRIC_COST]
    assert first["metrics"] == second["metrics"]
    client = MlflowClient(mlflow_url)
    histories = [
        [(m.step, m.value) for m in client.get_metric_history(r["run_id"], "train_loss")]
        for r in (first, second)
    ]
    assert sorted(histories[0]) == sorted(histories[1])
    assert len(histories[0]) == EPOCHS
    run = client.get_run(first["run_id"])
    assert run.data.tags[TAG_WORLD_SIZE] == "1"
