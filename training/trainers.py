"""The built-in trainers: scikit-learn estimators and XGBoost, chosen by params.

`resolve` turns a TrainingRun's framework and params into a validated `TrainerSpec` (pure, so
a typo fails before any data is read or any run is created); `fit` trains it on a `Split`,
calling `on_step(step, metrics)` after every epoch / boosting round / chunk of trees. The
callback is how metrics per step reach MLflow and how Optuna prunes: it may raise (e.g.
`optuna.TrialPruned`) to stop training early. Nothing here talks to MLflow or Optuna.
Over 400 lines on purpose, not split: the registry of estimators and the step loop of
each are read together (a new estimator is one entry and its loop, side by side).
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from maestro.training.data import Split, Task
from maestro.training.errors import TrainingError

StepCallback = Callable[[int, Mapping[str, float]], None]

# Params the trainer itself reads; every other param is a hyperparameter of the estimator.
RESERVED_PARAMS = frozenset(
    {"model", "target", "test_size", "task", "seed", "epochs", "steps", "model_format"}
)
# How scikit-learn models are serialised (MLflow's serialization_format). cloudpickle is
# MLflow's own default. skops loads without running code from the file, for registries
# that hold models from untrusted sources, but importing it takes seconds (it imports every
# scikit-learn estimator), paid by each worker pod of a search: opt in with
# params.model_format=skops.
MODEL_FORMATS = ("skops", "cloudpickle")
DEFAULT_MODEL_FORMAT = "cloudpickle"
DEFAULT_EPOCHS = 20
DEFAULT_STEPS = 10
XGBOOST = "xgboost"

CLASSIFICATION_METRICS = ("accuracy", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")


@dataclass(frozen=True)
class Estimator:
    """How one `params.model` value trains for one task."""

    cls: str  # "module:Class"
    # "ensemble": n_estimators grown in `steps` chunks with warm_start, so each chunk is a
    # step that can be pruned; "epochs": partial_fit once per epoch; "single": one fit.
    style: str
    # Linear models converge badly on unscaled features; they get a StandardScaler in front.
    scaled: bool = False
    # Types MLflow's skops format must be told to trust to save and load this model.
    trusted_types: tuple[str, ...] = ()


# skops refuses tree node arrays unless trusted; we trust the ones we just trained.
TREES = ("sklearn.tree._tree.Tree",)


ESTIMATORS: dict[str, dict[Task, Estimator]] = {
    "random_forest": {
        Task.CLASSIFICATION: Estimator(
            "sklearn.ensemble:RandomForestClassifier", "ensemble", False, TREES
        ),
        Task.REGRESSION: Estimator(
            "sklearn.ensemble:RandomForestRegressor", "ensemble", False, TREES
        ),
    },
    "gradient_boosting": {
        Task.CLASSIFICATION: Estimator(
            "sklearn.ensemble:GradientBoostingClassifier", "ensemble", False, TREES
        ),
        Task.REGRESSION: Estimator(
            "sklearn.ensemble:GradientBoostingRegressor", "ensemble", False, TREES
        ),
    },
    "logistic_regression": {
        Task.CLASSIFICATION: Estimator("sklearn.linear_model:LogisticRegression", "single", True),
    },
    "ridge": {
        Task.REGRESSION: Estimator("sklearn.linear_model:Ridge", "single", True),
    },
    "sgd": {
        Task.CLASSIFICATION: Estimator("sklearn.linear_model:SGDClassifier", "epochs", True),
        Task.REGRESSION: Estimator("sklearn.linear_model:SGDRegressor", "epochs", True),
    },
    XGBOOST: {
        Task.CLASSIFICATION: Estimator("xgboost:XGBClassifier", "boosting"),
        Task.REGRESSION: Estimator("xgboost:XGBRegressor", "boosting"),
    },
}
DEFAULT_MODEL = "random_forest"


@dataclass(frozen=True)
class TrainerSpec:
    """A validated choice of estimator and its hyperparameters."""

    model: str
    task: Task
    estimator: Estimator
    hyperparams: dict[str, Any] = field(default_factory=dict)
    epochs: int = DEFAULT_EPOCHS
    steps: int = DEFAULT_STEPS
    model_format: str = DEFAULT_MODEL_FORMAT

    @property
    def flavor(self) -> str:
        """The MLflow flavor that saves this model."""
        return XGBOOST if self.model == XGBOOST else "sklearn"


@dataclass
class Trained:
    """A fitted model and its final metrics on the held-out split."""

    model: Any
    flavor: str
    metrics: dict[str, float]
    trusted_types: tuple[str, ...] = ()
    model_format: str = DEFAULT_MODEL_FORMAT


def metric_names(task: Task) -> tuple[str, ...]:
    """Final metrics a trainer may log for `task` (roc_auc/log_loss need probabilities)."""
    return CLASSIFICATION_METRICS if task is Task.CLASSIFICATION else REGRESSION_METRICS


def parse_task(params: Mapping[str, Any]) -> Task | None:
    value = params.get("task")
    if value is None:
        return None
    try:
        return Task(str(value))
    except ValueError:
        raise TrainingError(
            f"params.task must be one of {', '.join(t.value for t in Task)}, got {value!r}"
        ) from None


def resolve(framework: str, params: Mapping[str, Any], task: Task) -> TrainerSpec:
    """Pick the estimator for `framework`/`params.model` and validate the hyperparameters."""
    fw = framework.lower()
    if fw == "xgboost":
        model = str(params.get("model", XGBOOST))
        if model != XGBOOST:
            raise TrainingError(f"framework XGBoost trains params.model=xgboost, got {model!r}")
    elif fw in ("sklearn", "generic"):
        model = str(params.get("model", DEFAULT_MODEL))
    else:
        # PyTorch runs are dispatched to maestro.training.torch_trainer before this point.
        raise TrainingError(
            f"framework {framework} has no built-in scikit-learn-style trainer (built in:"
            " SKLearn, XGBoost, and PyTorch without tuning); set spec.command to your own"
            " training entrypoint"
        )
    by_task = ESTIMATORS.get(model)
    if by_task is None:
        raise TrainingError(
            f"unknown params.model {model!r}; choose one of: {', '.join(ESTIMATORS)}"
        )
    estimator = by_task.get(task)
    if estimator is None:
        raise TrainingError(f"params.model {model!r} does not do {task.value}")
    defaults = _estimator_class(estimator)().get_params()
    hyper: dict[str, Any] = {}
    unknown = []
    for name, raw in params.items():
        if name in RESERVED_PARAMS:
            continue
        if name not in defaults:
            unknown.append(name)
            continue
        hyper[name] = coerce(raw, defaults[name])
    if unknown:
        raise TrainingError(
            f"unknown hyperparameter(s) {', '.join(sorted(unknown))} for"
            f" {estimator.cls.split(':')[1]}; valid: {', '.join(sorted(defaults))}"
        )
    return TrainerSpec(
        model=model,
        task=task,
        estimator=estimator,
        hyperparams=hyper,
        epochs=_positive_int(params, "epochs", DEFAULT_EPOCHS),
        steps=_positive_int(params, "steps", DEFAULT_STEPS),
        model_format=_model_format(params),
    )


def _model_format(params: Mapping[str, Any]) -> str:
    value = str(params.get("model_format", DEFAULT_MODEL_FORMAT))
    if value not in MODEL_FORMATS:
        raise TrainingError(f"params.model_format must be one of {', '.join(MODEL_FORMATS)}")
    return value


def _positive_int(params: Mapping[str, Any], name: str, default: int) -> int:
    value = coerce(params.get(name, default), default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise TrainingError(f"params.{name} must be a positive integer, got {value!r}")
    return value


def coerce(value: Any, default: Any) -> Any:
    """Give a param the type the estimator expects.

    CRD params and categorical choices are strings, numbers or booleans (other values are
    quoted, e.g. "0.5", "true", "null"), and JSON numbers may arrive as floats, while
    scikit-learn's parameter validation rejects 100.0 for an integer parameter.
    """
    if isinstance(value, str):
        text = value.strip()
        lowered = text.lower()
        if lowered in ("none", "null"):
            return None
        if lowered in ("true", "false"):
            return lowered == "true"
        try:
            parsed = json.loads(text)
        except ValueError:
            return value
        if isinstance(parsed, int | float):
            value = parsed
        else:
            return value
    int_like = default is None or (isinstance(default, int) and not isinstance(default, bool))
    if int_like and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _estimator_class(estimator: Estimator) -> Any:
    module, name = estimator.cls.split(":")
    return getattr(importlib.import_module(module), name)


def fit(spec: TrainerSpec, data: Split, *, seed: int, on_step: StepCallback) -> Trained:
    """Train `spec` on `data`, deterministically for a given seed."""
    cls = _estimator_class(spec.estimator)
    params = dict(spec.hyperparams)
    if "random_state" in cls().get_params() and "random_state" not in params:
        params["random_state"] = seed
    try:
        estimator = cls(**params)
    except TypeError as err:
        raise TrainingError(f"invalid hyperparameters for {cls.__name__}: {err}") from err
    style = spec.estimator.style
    if style == "boosting":
        model = _fit_xgboost(estimator, spec, data, on_step)
    elif style == "ensemble":
        model = _fit_ensemble(estimator, spec, data, on_step)
    elif style == "epochs":
        model = _fit_epochs(estimator, spec, data, seed, on_step)
    else:
        model = _fit_single(estimator, spec, data, on_step)
    metrics = evaluate(model, data.x_test, data.y_test, data)
    return Trained(model, spec.flavor, metrics, spec.estimator.trusted_types, spec.model_format)


def _fit_single(estimator: Any, spec: TrainerSpec, data: Split, on_step: StepCallback) -> Any:
    model = (
        Pipeline([("scale", StandardScaler()), ("model", estimator)])
        if spec.estimator.scaled
        else estimator
    )
    _call_fit(model, data.x_train, data.y_train)
    on_step(0, evaluate(model, data.x_test, data.y_test, data))
    return model


def _fit_ensemble(estimator: Any, spec: TrainerSpec, data: Split, on_step: StepCallback) -> Any:
    total = estimator.get_params()["n_estimators"]
    # Chunking would hide scikit-learn's own check (every chunk has at least one tree).
    if not isinstance(total, int) or isinstance(total, bool) or total < 1:
        raise TrainingError(f"n_estimators must be a positive integer, got {total!r}")
    # warm_start adds trees to the fitted ones, and scikit-learn advances the random state
    # past the existing trees, so the chunked forest equals one fitted in a single call.
    sizes = sorted({max(1, round(total * (i + 1) / spec.steps)) for i in range(spec.steps)})
    estimator.set_params(warm_start=True)
    for step, size in enumerate(sizes):
        estimator.set_params(n_estimators=size)
        _call_fit(estimator, data.x_train, data.y_train)
        on_step(step, evaluate(estimator, data.x_test, data.y_test, data))
    estimator.set_params(warm_start=False)
    return estimator


def _fit_epochs(
    estimator: Any, spec: TrainerSpec, data: Split, seed: int, on_step: StepCallback
) -> Any:
    scaler = StandardScaler().fit(data.x_train)
    # Arrays, as the Pipeline hands the scaler's output to the estimator when serving.
    x_train = scaler.transform(data.x_train)
    x_test = scaler.transform(data.x_test)
    y_train = data.y_train.to_numpy()
    rng = np.random.default_rng(seed)
    classes = np.asarray(data.classes) if data.task is Task.CLASSIFICATION else None
    for epoch in range(spec.epochs):
        order = rng.permutation(len(x_train))
        xs, ys = x_train[order], y_train[order]
        if classes is not None:
            _call_fit(estimator, xs, ys, method="partial_fit", classes=classes)
        else:
            _call_fit(estimator, xs, ys, method="partial_fit")
        on_step(epoch, evaluate(estimator, x_test, data.y_test, data))
    return Pipeline([("scale", scaler), ("model", estimator)])


def _fit_xgboost(estimator: Any, spec: TrainerSpec, data: Split, on_step: StepCallback) -> Any:
    from xgboost.callback import TrainingCallback

    if data.task is Task.CLASSIFICATION and data.classes != list(range(len(data.classes))):
        raise TrainingError(
            f"XGBoost needs class labels 0..n-1; column {data.target!r} has {data.classes[:10]}"
        )

    class Rounds(TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            on_step(epoch, _xgboost_round_metrics(evals_log.get("validation_0", {})))
            return False

    # Set as attributes, not set_params: after fit, set_params forwards to the booster.
    if "eval_metric" not in spec.hyperparams:
        if data.task is Task.REGRESSION:
            estimator.eval_metric = ["rmse", "mae"]
        elif len(data.classes) > 2:
            estimator.eval_metric = ["merror", "mlogloss"]
        else:
            estimator.eval_metric = ["error", "logloss", "auc"]
    estimator.callbacks = [Rounds()]
    try:
        estimator.fit(
            data.x_train, data.y_train, eval_set=[(data.x_test, data.y_test)], verbose=False
        )
    except (ValueError, TypeError) as err:
        raise TrainingError(f"XGBoost rejected the hyperparameters or data: {err}") from err
    finally:
        # The callback closes over this process's reporter; it must not travel with the model.
        estimator.callbacks = None
    return estimator


# XGBoost's evaluation metric names -> the names Maestro's trainers log.
XGBOOST_METRICS: dict[str, Callable[[float], tuple[str, float]]] = {
    "error": lambda v: ("accuracy", 1.0 - v),
    "merror": lambda v: ("accuracy", 1.0 - v),
    "logloss": lambda v: ("log_loss", v),
    "mlogloss": lambda v: ("log_loss", v),
    "auc": lambda v: ("roc_auc", v),
    "rmse": lambda v: ("rmse", v),
    "mae": lambda v: ("mae", v),
}


def _xgboost_round_metrics(log: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, history in log.items():
        value = float(history[-1])
        mapped = XGBOOST_METRICS.get(name)
        key, val = mapped(value) if mapped else (name, value)
        out[key] = val
    return out


def _call_fit(estimator: Any, x: Any, y: Any, method: str = "fit", **kwargs: Any) -> None:
    try:
        getattr(estimator, method)(x, y, **kwargs)
    except (ValueError, TypeError) as err:
        # scikit-learn's InvalidParameterError is both; so are NaNs and mixed label types:
        # bad input that a retry cannot fix.
        raise TrainingError(f"{type(estimator).__name__}.{method} failed: {err}") from err


def evaluate(model: Any, x: pd.DataFrame, y: pd.Series, data: Split) -> dict[str, float]:
    """Held-out metrics: accuracy/f1/roc_auc/log_loss or rmse/mae/r2."""
    proba = None
    if data.task is Task.CLASSIFICATION and hasattr(model, "predict_proba"):
        # One pass over the model instead of two (every step of a forest evaluates it): for
        # the estimators here, predict is the class of highest probability.
        proba = model.predict_proba(x)
        predicted = np.asarray(model.classes_)[np.argmax(proba, axis=1)]
    else:
        predicted = model.predict(x)
    if data.task is Task.REGRESSION:
        return {
            "rmse": math.sqrt(metrics.mean_squared_error(y, predicted)),
            "mae": float(metrics.mean_absolute_error(y, predicted)),
            "r2": float(metrics.r2_score(y, predicted)),
        }
    classes = data.classes
    binary = len(classes) == 2
    out = {
        "accuracy": float(metrics.accuracy_score(y, predicted)),
        "f1": float(
            metrics.f1_score(y, predicted, average="binary", pos_label=classes[-1])
            if binary
            else metrics.f1_score(y, predicted, average="macro")
        ),
    }
    if proba is not None:
        out["log_loss"] = float(metrics.log_loss(y, proba, labels=classes))
        if binary:
            out["roc_auc"] = float(metrics.roc_auc_score(y, proba[:, 1]))
        else:
            out["roc_auc"] = float(
                metrics.roc_auc_score(y, proba, multi_class="ovr", labels=classes)
            )
    elif binary and hasattr(model, "decision_function"):
        out["roc_auc"] = float(metrics.roc_auc_score(y, model.decision_function(x)))
    return out
