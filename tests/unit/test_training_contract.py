"""The operator <-> trainer environment contract, and `maestro train --help`."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from maestro.training import contract
from maestro.training.contract import TrainerEnvironment

pytestmark = pytest.mark.unit

CASES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    (
        "empty",
        {},
        {"framework": "Generic", "params": {}, "seed": 0, "tuning": None, "worker_index": 0},
    ),
    (
        "empty-strings-are-unset",
        {contract.PARENT_RUN_ID: "", contract.DATASET_URI: "", contract.SEED: ""},
        {"parent_run_id": None, "dataset_uri": None, "seed": 0},
    ),
    (
        "single-training",
        {
            contract.TRACKING_URI: "http://mlflow:5000",
            contract.TRAININGRUN: "ml/iris",
            contract.FRAMEWORK: "SKLearn",
            contract.PARAMS: '{"model": "sgd", "alpha": 0.01}',
            contract.DATASET_URI: "sklearn://iris",
            contract.SEED: "7",
        },
        {
            "tracking_uri": "http://mlflow:5000",
            "trainingrun": "ml/iris",
            "framework": "SKLearn",
            "params": {"model": "sgd", "alpha": 0.01},
            "dataset_uri": "sklearn://iris",
            "seed": 7,
        },
    ),
    (
        "tuning-worker",
        {
            contract.TUNING: '{"trials": 4, "objectives": [{"metric": "accuracy"}]}',
            contract.OPTUNA_STUDY: "ml-iris",
            contract.WORKER_INDEX: "3",
        },
        {
            "tuning": {"trials": 4, "objectives": [{"metric": "accuracy"}]},
            "optuna_study": "ml-iris",
            "worker_index": 3,
        },
    ),
]


@pytest.mark.parametrize(("env", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_from_env(env: dict[str, str], expected: dict[str, Any]) -> None:
    parsed = TrainerEnvironment.from_env(env)
    assert {key: getattr(parsed, key) for key in expected} == expected


def test_bad_params_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        TrainerEnvironment.from_env({contract.PARAMS: "{not json"})


def test_train_help_names_every_contract_variable() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "maestro.operators.cli", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = [
        value
        for key, value in vars(contract).items()
        if key.isupper() and isinstance(value, str) and value.isupper() and "_" in value
    ]
    assert len(names) >= 15
    missing = [name for name in names if name not in out]
    assert not missing


def test_train_help_imports_neither_mlflow_nor_optuna() -> None:
    code = (
        "import sys\nfrom maestro.operators.cli import build_parser\n"
        "build_parser().format_help()\nprint(' '.join(sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    modules = {name.split(".")[0] for name in out.split()}
    assert not {"mlflow", "optuna", "sklearn", "kopf"} & modules


def test_tuning_module_imports_neither_mlflow_nor_kubernetes() -> None:
    """The operator calls create_study/summarize: they must not drag MLflow or kopf in."""
    code = "import sys\nimport maestro.training.tuning\nprint(' '.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    modules = {name.split(".")[0] for name in out.split()}
    assert not {"mlflow", "kopf", "kubernetes"} & modules
