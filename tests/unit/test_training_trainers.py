"""Estimator choice, hyperparameter validation and the training loops (no MLflow)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from maestro.training.data import Split, Task, load_frame, split
from maestro.training.errors import TrainingError
from maestro.training.trainers import coerce, fit, resolve

pytestmark = pytest.mark.unit


def data(name: str) -> Split:
    return split(load_frame(f"sklearn://{name}"), seed=0)


COERCE_CASES = [
    ("quoted-float", "0.5", 1.0, 0.5),
    ("quoted-int-for-int", "100", 10, 100),
    ("float-for-int", 100.0, 10, 100),
    ("float-for-none-default", 5.0, None, 5),
    ("float-for-float", 1.0, 0.1, 1.0),
    ("float-for-string-default", 1.0, "sqrt", 1.0),
    ("true", "true", False, True),
    ("null", "null", 3, None),
    ("plain-string", "entropy", "gini", "entropy"),
    ("json-list-stays-string", "[1, 2]", None, "[1, 2]"),
]


@pytest.mark.parametrize(
    ("value", "default", "expected"),
    [c[1:] for c in COERCE_CASES],
    ids=[c[0] for c in COERCE_CASES],
)
def test_coerce(value: Any, default: Any, expected: Any) -> None:
    result = coerce(value, default)
    assert result == expected and type(result) is type(expected)


RESOLVE_CASES = [
    ("default-forest", "SKLearn", {}, Task.CLASSIFICATION, "RandomForestClassifier"),
    ("generic-is-sklearn", "Generic", {"model": "sgd"}, Task.REGRESSION, "SGDRegressor"),
    (
        "logistic",
        "SKLearn",
        {"model": "logistic_regression", "C": "0.5"},
        Task.CLASSIFICATION,
        "LogisticRegression",
    ),
    ("xgboost", "XGBoost", {"max_depth": 3}, Task.REGRESSION, "XGBRegressor"),
]


@pytest.mark.parametrize(
    ("framework", "params", "task", "cls"),
    [c[1:] for c in RESOLVE_CASES],
    ids=[c[0] for c in RESOLVE_CASES],
)
def test_resolve(framework: str, params: dict[str, Any], task: Task, cls: str) -> None:
    spec = resolve(framework, params, task)
    assert spec.estimator.cls.endswith(f":{cls}")
    assert "model" not in spec.hyperparams


RESOLVE_ERRORS = [
    (
        "pytorch",
        "PyTorch",
        {},
        Task.CLASSIFICATION,
        "framework PyTorch has no built-in scikit-learn-style trainer",
    ),
    (
        "unknown-model",
        "SKLearn",
        {"model": "svm"},
        Task.CLASSIFICATION,
        "unknown params.model 'svm'",
    ),
    (
        "wrong-task",
        "SKLearn",
        {"model": "logistic_regression"},
        Task.REGRESSION,
        "does not do regression",
    ),
    (
        "typo",
        "SKLearn",
        {"n_estimator": 5},
        Task.CLASSIFICATION,
        "unknown hyperparameter.*n_estimator for RandomForestClassifier",
    ),
    (
        "xgboost-other-model",
        "XGBoost",
        {"model": "sgd"},
        Task.CLASSIFICATION,
        "params.model=xgboost",
    ),
    (
        "bad-epochs",
        "SKLearn",
        {"model": "sgd", "epochs": 0},
        Task.CLASSIFICATION,
        "epochs must be a positive",
    ),
]


@pytest.mark.parametrize(
    ("framework", "params", "task", "message"),
    [c[1:] for c in RESOLVE_ERRORS],
    ids=[c[0] for c in RESOLVE_ERRORS],
)
def test_resolve_errors(framework: str, params: dict[str, Any], task: Task, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        resolve(framework, params, task)


FIT_CASES = [
    ("forest", "SKLearn", "iris", {"n_estimators": 20, "steps": 4}, 4, "accuracy"),
    (
        "boosting-regression",
        "SKLearn",
        "diabetes",
        {"model": "gradient_boosting", "n_estimators": 10},
        10,
        "rmse",
    ),
    (
        "sgd-epochs",
        "SKLearn",
        "breast_cancer",
        {"model": "sgd", "epochs": 5, "loss": "log_loss"},
        5,
        "roc_auc",
    ),
    ("logistic", "SKLearn", "wine", {"model": "logistic_regression"}, 1, "f1"),
    ("ridge", "SKLearn", "diabetes", {"model": "ridge", "alpha": 0.5}, 1, "r2"),
    ("xgboost-binary", "XGBoost", "breast_cancer", {"n_estimators": 15}, 15, "roc_auc"),
    ("xgboost-regression", "XGBoost", "diabetes", {"n_estimators": 8}, 8, "rmse"),
]


@pytest.mark.parametrize(
    ("framework", "dataset", "params", "steps", "metric"),
    [c[1:] for c in FIT_CASES],
    ids=[c[0] for c in FIT_CASES],
)
def test_fit_reports_steps_and_is_deterministic(
    framework: str, dataset: str, params: dict[str, Any], steps: int, metric: str
) -> None:
    split_ = data(dataset)
    spec = resolve(framework, params, split_.task)
    seen: list[tuple[int, dict[str, float]]] = []

    def on_step(step: int, metrics: Mapping[str, float]) -> None:
        seen.append((step, dict(metrics)))

    first = fit(spec, split_, seed=1, on_step=on_step)
    second = fit(spec, split_, seed=1, on_step=lambda step, metrics: None)
    assert [s for s, _ in seen] == list(range(steps))
    assert metric in first.metrics
    assert first.metrics == second.metrics
    assert first.model.predict(split_.example()).shape == (5,)


def test_on_step_can_stop_training() -> None:
    class Stop(Exception):
        pass

    def on_step(step: int, metrics: Mapping[str, float]) -> None:
        if step == 2:
            raise Stop

    split_ = data("breast_cancer")
    with pytest.raises(Stop):
        fit(resolve("XGBoost", {"n_estimators": 50}, split_.task), split_, seed=0, on_step=on_step)


def test_bad_hyperparameter_value_is_a_training_error() -> None:
    split_ = data("iris")
    spec = resolve("SKLearn", {"n_estimators": -3}, split_.task)
    with pytest.raises(TrainingError, match="n_estimators"):
        fit(spec, split_, seed=0, on_step=lambda step, metrics: None)
