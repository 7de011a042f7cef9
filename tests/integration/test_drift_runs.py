"""`maestro drift check` against the real MLflow: `runs:/<run id>` is the dataset a run
trained on (a TrainingRun's logged dataset), `runs:/<run id>/<path>` a logged file."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_iris

from maestro.training.contract import TAG_DATASET_URI

pytestmark = pytest.mark.services

MAESTRO = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "maestro"
# A cache of this module's own, so that a first run computes (and a later one reads).
CACHE = tempfile.mkdtemp(prefix="maestro-refstats-")


def drift(mlflow_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_url, "MAESTRO_REFSTATS_DIR": CACHE}
    return subprocess.run(
        [str(MAESTRO), "drift", "check", "--output", "json", *args],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_runs_logged_dataset_and_a_logged_file_are_references(
    mlflow_url: str, tmp_path: Path
) -> None:
    client = MlflowClient(mlflow_url)
    experiment = client.create_experiment(f"drift-runs-{os.getpid()}-{tmp_path.name}")
    trained = client.create_run(experiment, tags={TAG_DATASET_URI: "sklearn://iris"})
    iris = load_iris(as_frame=True).data
    current = tmp_path / "current.parquet"
    shifted = iris.sample(300, replace=True, random_state=5).reset_index(drop=True)
    shifted["sepal length (cm)"] += 2.0
    shifted.to_parquet(current)

    by_dataset = drift(mlflow_url, "--reference", f"runs:/{trained.info.run_id}",
                       "--current", str(current))  # fmt: skip
    assert by_dataset.returncode == 0, by_dataset.stderr
    drifted = [c["name"] for c in json.loads(by_dataset.stdout)["columns"] if c["drifted"]]
    assert drifted == ["sepal length (cm)"]

    (tmp_path / "ref").mkdir()
    iris.to_parquet(tmp_path / "ref" / "iris.parquet")
    client.log_artifacts(trained.info.run_id, str(tmp_path / "ref"), "data")
    by_file = drift(mlflow_url, "--reference", f"runs:/{trained.info.run_id}/data/iris.parquet",
                    "--current", str(current))  # fmt: skip
    assert by_file.returncode == 0, by_file.stderr
    assert json.loads(by_file.stdout)["columns"] == json.loads(by_dataset.stdout)["columns"]
    # The artifact's statistics were cached: a second run does not compute them again.
    again = drift(mlflow_url, "--reference", f"runs:/{trained.info.run_id}/data/iris.parquet",
                  "--current", str(current))  # fmt: skip
    assert again.returncode == 0 and "computing reference statistics" not in again.stderr
    assert again.stdout == by_file.stdout

    untagged = client.create_run(experiment)
    refused = drift(mlflow_url, "--reference", f"runs:/{untagged.info.run_id}",
                    "--current", str(current))  # fmt: skip
    assert refused.returncode == 2
    assert "names no dataset" in refused.stderr
