"""Measuring what the gates judge: both models loaded from the registry and run for real
on the policy's held-out data, the candidate's predictions timed, per-group scores, and
both input signatures."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from maestro.governance.gates import Evidence, GroupScores, Timing
from maestro.governance.policy import (
    Dataset,
    FairnessGate,
    LatencyGate,
    MetricGate,
    Policy,
    SignatureGate,
)
from maestro.governance.registry import ModelRegistry, one_line
from maestro.governance.signature import incompatibilities

WARMUP_PREDICTIONS = 5


class DatasetError(ValueError):
    """The policy's dataset cannot be read or used (bad input)."""


def score(metric: str, y_true: np.ndarray[Any, Any], y_pred: np.ndarray[Any, Any]) -> float:
    from sklearn import metrics

    if metric == "accuracy":
        return float(metrics.accuracy_score(y_true, y_pred))
    if metric == "f1":
        return float(metrics.f1_score(y_true, y_pred, average="macro"))
    if metric == "rmse":
        return math.sqrt(float(metrics.mean_squared_error(y_true, y_pred)))
    if metric == "mae":
        return float(metrics.mean_absolute_error(y_true, y_pred))
    return float(metrics.r2_score(y_true, y_pred))


def holdout_rows(frame: pd.DataFrame, dataset: Dataset) -> pd.DataFrame:
    """The rows to evaluate on: all, or the held-out part of the split `maestro train`
    makes (same fraction, seed and stratification, so the same rows)."""
    if dataset.target not in frame.columns:
        raise DatasetError(
            f"spec.dataset.target {dataset.target!r} is not a column of {dataset.uri}; its"
            f" columns are {', '.join(map(str, frame.columns))}"
        )
    if dataset.holdout is None:
        return frame
    from sklearn.model_selection import train_test_split

    y = frame[dataset.target]
    classes = not pd.api.types.is_float_dtype(y) or y.nunique() <= 20
    stratify = y if classes and y.value_counts().min() >= 2 else None
    _, test = train_test_split(
        frame, test_size=dataset.holdout, random_state=dataset.seed, stratify=stratify
    )
    return test


def load_rows(dataset: Dataset) -> pd.DataFrame:
    from maestro.training.data import load_frame
    from maestro.training.errors import TrainingError

    try:
        frame = load_frame(dataset.uri)
    except (TrainingError, OSError, ValueError) as err:
        raise DatasetError(f"spec.dataset.uri {dataset.uri}: {one_line(err)}") from None
    return holdout_rows(frame, dataset)


def _flat(predictions: Any) -> np.ndarray[Any, Any]:
    values = np.asarray(
        predictions.iloc[:, 0] if isinstance(predictions, pd.DataFrame) else predictions
    )
    return values.reshape(len(values), -1)[:, 0] if values.ndim > 1 else values


@dataclass
class _Model:
    version: str
    predict: Callable[[pd.DataFrame], Any]
    inputs: list[str]  # column names the signature asks for; [] when it names none


def _load(registry: ModelRegistry, name: str, version: str) -> _Model:
    import mlflow.pyfunc

    with registry.resolving():
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    names = [str(s["name"]) for s in registry.input_signature(name, version) if s.get("name")]
    return _Model(version, model.predict, names)


def _features(model: _Model, rows: pd.DataFrame, target: str) -> pd.DataFrame:
    if model.inputs:
        missing = [c for c in model.inputs if c not in rows.columns]
        if missing:
            raise DatasetError(
                f"the dataset lacks input(s) {', '.join(missing)} of version {model.version}"
            )
        return rows[model.inputs]
    return rows.drop(columns=[target])


def _metric_names(policy: Policy) -> set[str]:
    return {g.metric for g in policy.spec.gates if isinstance(g, MetricGate | FairnessGate)}


def _time(model: _Model, x: pd.DataFrame, gate: LatencyGate) -> Timing:
    samples = []
    for i in range(WARMUP_PREDICTIONS + gate.requests):
        start = (i * gate.batch_size) % max(1, len(x) - gate.batch_size + 1)
        batch = x.iloc[start : start + gate.batch_size]
        began = time.perf_counter()
        model.predict(batch)
        if i >= WARMUP_PREDICTIONS:
            samples.append((time.perf_counter() - began) * 1000)
    p50, p95 = np.percentile(samples, [50, 95])
    return Timing(float(p50), float(p95), len(samples))


def gather(
    registry: ModelRegistry, name: str, candidate: str, champion: str | None, policy: Policy
) -> Evidence:
    """Measure `candidate` (and `champion`, when there is one) as the policy's gates need."""
    gates = policy.spec.gates
    problems: list[str] = []
    if champion is not None and any(isinstance(g, SignatureGate) for g in gates):
        problems = incompatibilities(
            registry.input_signature(name, champion), registry.input_signature(name, candidate)
        )
    dataset = policy.spec.dataset
    if dataset is None:
        return Evidence(candidate, champion, signature_problems=problems)
    rows = load_rows(dataset)
    y = rows[dataset.target].to_numpy()
    wanted = _metric_names(policy)
    new = _load(registry, name, candidate)
    x_new = _features(new, rows, dataset.target)
    predicted = _flat(new.predict(x_new))
    candidate_metrics = {m: score(m, y, predicted) for m in wanted}
    champion_metrics = None
    if champion is not None and any(isinstance(g, MetricGate) for g in gates):
        old = _load(registry, name, champion)
        old_predicted = _flat(old.predict(_features(old, rows, dataset.target)))
        champion_metrics = {m: score(m, y, old_predicted) for m in wanted}
    groups: dict[str, dict[str, GroupScores]] = {}
    for gate in gates:
        if isinstance(gate, FairnessGate):
            groups[gate.column] = _group_scores(rows, gate, y, predicted)
    latency = next((g for g in gates if isinstance(g, LatencyGate)), None)
    timing = _time(new, x_new, latency) if latency is not None else None
    return Evidence(
        candidate,
        champion,
        candidate_metrics,
        champion_metrics,
        timing,
        groups,
        problems,
        rows=len(rows),
    )


def _group_scores(
    rows: pd.DataFrame, gate: FairnessGate, y: np.ndarray[Any, Any], predicted: np.ndarray[Any, Any]
) -> dict[str, GroupScores]:
    if gate.column not in rows.columns:
        raise DatasetError(
            f"fairness gate: column {gate.column!r} is not in the dataset; its columns are"
            f" {', '.join(map(str, rows.columns))}"
        )
    column = rows[gate.column].to_numpy()
    out: dict[str, GroupScores] = {}
    for value in pd.unique(column):
        mask = column == value
        out[str(value)] = GroupScores(
            int(mask.sum()), {gate.metric: score(gate.metric, y[mask], predicted[mask])}
        )
    return out
