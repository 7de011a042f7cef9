"""Search space, objective values, samplers and summarize(), on in-memory studies."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState

from maestro.operators.api.trainingrun import SearchParam, Tuning
from maestro.training.contract import TRIAL_ATTR_RUN_ID
from maestro.training.errors import TrainingError
from maestro.training.tuning import (
    create_study,
    distributions,
    keeps_model,
    make_pruner,
    make_sampler,
    objective_values,
    storage_url,
    summarize,
)

pytestmark = pytest.mark.unit

optuna.logging.set_verbosity(optuna.logging.WARNING)


def tuning(**overrides: Any) -> Tuning:
    spec: dict[str, Any] = {
        "trials": 10,
        "objectives": [{"metric": "accuracy", "direction": "maximize"}],
        "space": {"alpha": {"type": "float", "low": 0.001, "high": 1.0, "log": True}},
    }
    spec.update(overrides)
    return Tuning.model_validate(spec)


SPACE_CASES: list[tuple[str, dict[str, Any], object]] = [
    ("float", {"type": "float", "low": 0.1, "high": 0.9}, FloatDistribution(0.1, 0.9)),
    (
        "float-log",
        {"type": "float", "low": 1e-4, "high": 1, "log": True},
        FloatDistribution(1e-4, 1, log=True),
    ),
    (
        "float-step",
        {"type": "float", "low": 0, "high": 1, "step": 0.25},
        FloatDistribution(0, 1, step=0.25),
    ),
    ("int", {"type": "int", "low": 10, "high": 200}, IntDistribution(10, 200)),
    (
        "int-step",
        {"type": "int", "low": 10, "high": 200, "step": 10},
        IntDistribution(10, 200, step=10),
    ),
    (
        "int-log",
        {"type": "int", "low": 1, "high": 1024, "log": True},
        IntDistribution(1, 1024, log=True),
    ),
    (
        "categorical",
        {"type": "categorical", "choices": ["gini", "entropy", 3]},
        CategoricalDistribution(["gini", "entropy", 3]),
    ),
]


@pytest.mark.parametrize(
    ("param", "expected"), [c[1:] for c in SPACE_CASES], ids=[c[0] for c in SPACE_CASES]
)
def test_space_to_distributions(param: dict[str, Any], expected: object) -> None:
    assert distributions({"p": SearchParam.model_validate(param)}) == {"p": expected}


SPACE_ERRORS = [
    (
        "log-and-step",
        {"type": "float", "low": 0.1, "high": 1, "log": True, "step": 0.1},
        "log and step",
    ),
    ("fractional-int", {"type": "int", "low": 0.5, "high": 4}, "whole numbers"),
    ("no-bounds", {"type": "float"}, "low and high are required"),
    ("no-choices", {"type": "categorical"}, "choices is required"),
]


@pytest.mark.parametrize(
    ("param", "message"), [c[1:] for c in SPACE_ERRORS], ids=[c[0] for c in SPACE_ERRORS]
)
def test_space_errors_name_the_parameter(param: dict[str, Any], message: str) -> None:
    with pytest.raises(TrainingError, match=f"tuning.space.p: .*{message}"):
        distributions({"p": SearchParam.model_validate(param)})


OBJECTIVE_CASES = [
    ("maximize", {}, {"accuracy": 0.9}, 5.0, [0.9]),
    (
        "minimize",
        {"objectives": [{"metric": "rmse", "direction": "minimize"}]},
        {"rmse": 3.0},
        5.0,
        [3.0],
    ),
    ("cost-aware-maximize", {"costWeight": 0.01}, {"accuracy": 0.9}, 5.0, [0.85]),
    (
        "cost-aware-minimize",
        {"costWeight": 0.1, "objectives": [{"metric": "rmse", "direction": "minimize"}]},
        {"rmse": 3.0},
        5.0,
        [3.5],
    ),
    (
        "multi-objective",
        {"objectives": [{"metric": "accuracy"}, {"metric": "cost", "direction": "minimize"}]},
        {"accuracy": 0.9, "cost": 2.0},
        2.0,
        [0.9, 2.0],
    ),
]


@pytest.mark.parametrize(
    ("overrides", "metrics", "cost", "expected"),
    [c[1:] for c in OBJECTIVE_CASES],
    ids=[c[0] for c in OBJECTIVE_CASES],
)
def test_objective_values(
    overrides: dict[str, Any], metrics: dict[str, float], cost: float, expected: list[float]
) -> None:
    assert objective_values(tuning(**overrides), metrics, cost) == pytest.approx(expected)


def test_missing_objective_metric_names_what_was_logged() -> None:
    with pytest.raises(TrainingError, match=r"'accuracy' was not logged.*rmse"):
        objective_values(tuning(), {"rmse": 1.0}, 0.0)


SAMPLER_CASES = [
    ("TPE", optuna.samplers.TPESampler),
    ("Random", optuna.samplers.RandomSampler),
    ("CMAES", optuna.samplers.CmaEsSampler),
    ("NSGAII", optuna.samplers.NSGAIISampler),
]


@pytest.mark.parametrize(("name", "cls"), SAMPLER_CASES, ids=[c[0] for c in SAMPLER_CASES])
def test_sampler(name: str, cls: type) -> None:
    assert isinstance(make_sampler(tuning(sampler=name), seed=1), cls)


def test_seeded_sampler_is_deterministic() -> None:
    def proposals(seed: int) -> list[float]:
        study = optuna.create_study(sampler=make_sampler(tuning(sampler="Random"), seed))
        return [study.ask().suggest_float("x", 0, 1) for _ in range(3)]

    assert proposals(5) == proposals(5) != proposals(6)


PRUNER_CASES = [
    ("median", {}, optuna.pruners.MedianPruner),
    ("none", {"pruner": "None"}, optuna.pruners.NopPruner),
    (
        "multi-objective-cannot-prune",
        {"objectives": [{"metric": "accuracy"}, {"metric": "cost", "direction": "minimize"}]},
        optuna.pruners.NopPruner,
    ),
]


@pytest.mark.parametrize(
    ("overrides", "cls"), [c[1:] for c in PRUNER_CASES], ids=[c[0] for c in PRUNER_CASES]
)
def test_pruner(overrides: dict[str, Any], cls: type) -> None:
    assert isinstance(make_pruner(tuning(**overrides)), cls)


def test_create_study_sets_directions_and_is_idempotent() -> None:
    storage = optuna.storages.InMemoryStorage()
    spec = tuning(objectives=[{"metric": "accuracy"}, {"metric": "cost", "direction": "minimize"}])
    study = create_study(storage, "s", spec)
    again = create_study(storage, "s", spec)
    assert (
        study.directions
        == again.directions
        == [
            optuna.study.StudyDirection.MAXIMIZE,
            optuna.study.StudyDirection.MINIMIZE,
        ]
    )
    assert len(optuna.get_all_study_summaries(storage)) == 1


def test_create_study_refuses_other_directions() -> None:
    storage = optuna.storages.InMemoryStorage()
    create_study(storage, "s", tuning())
    with pytest.raises(TrainingError, match="directions"):
        create_study(storage, "s", tuning(objectives=[{"metric": "rmse", "direction": "minimize"}]))


STORAGE_CASES = [
    ("bare-postgresql", "postgresql://u:p@h/db", "postgresql+psycopg2://u:p@h/db"),
    ("explicit-driver", "postgresql+psycopg2://u:p@h/db", "postgresql+psycopg2://u:p@h/db"),
    ("sqlite", "sqlite:///x.db", "sqlite:///x.db"),
]


@pytest.mark.parametrize(
    ("url", "expected"), [c[1:] for c in STORAGE_CASES], ids=[c[0] for c in STORAGE_CASES]
)
def test_storage_url(url: str, expected: str) -> None:
    assert storage_url(url) == expected


def add_trial(study: optuna.Study, state: TrialState, x: float, values: list[float] | None) -> None:
    trial = study.ask()
    trial.suggest_float("x", 0, 10)
    trial.set_user_attr(TRIAL_ATTR_RUN_ID, f"run-{trial.number}")
    if state is TrialState.RUNNING:
        return
    study.tell(trial, values if state is TrialState.COMPLETE else None, state=state)


def test_summarize_single_objective() -> None:
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"x": 1.0})
    for state, value in [
        (TrialState.COMPLETE, [0.5]),
        (TrialState.COMPLETE, [0.9]),
        (TrialState.PRUNED, None),
        (TrialState.FAIL, None),
        (TrialState.RUNNING, None),
    ]:
        add_trial(study, state, 0, value)
    summary = summarize(study)
    assert (summary.total, summary.completed, summary.pruned, summary.failed, summary.running) == (
        5,
        2,
        1,
        1,
        1,
    )
    assert summary.finished == 4
    assert summary.best is not None
    assert (summary.best.number, summary.best.values, summary.best.run_id) == (1, [0.9], "run-1")
    assert summary.pareto_front == []
    assert summary.to_dict()["best"]["params"] == study.trials[1].params


def test_summarize_multi_objective_pareto_front() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    for values in ([0.9, 5.0], [0.8, 1.0], [0.7, 2.0], [0.95, 9.0]):
        add_trial(study, TrialState.COMPLETE, 0, values)
    summary = summarize(study)
    assert [t.number for t in summary.pareto_front] == [0, 1, 3]
    assert summary.best == summary.pareto_front[0]


def test_summarize_empty_study() -> None:
    summary = summarize(optuna.create_study())
    assert summary.total == 0 and summary.best is None


MAX, MIN = StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE


@pytest.mark.parametrize(
    ("values", "front", "dirs", "keep"),
    [
        ([0.9], [], [MAX], True),
        ([0.9], [[0.8]], [MAX], True),
        ([0.9], [[0.9]], [MAX], True),
        ([0.7], [[0.8]], [MAX], False),
        ([0.7], [[0.8]], [MIN], True),
        ([0.9, 5.0], [[0.8, 3.0]], [MAX, MIN], True),
        ([0.7, 5.0], [[0.8, 3.0]], [MAX, MIN], False),
        ([0.8, 3.0], [[0.8, 3.0]], [MAX, MIN], True),
        ([0.7, 2.0], [[0.8, 3.0], [0.6, 1.0]], [MAX, MIN], True),
    ],
    ids=[
        "first-trial",
        "new-best",
        "tie-keeps",
        "worse-skips",
        "worse-when-minimising-is-better",
        "pareto-new-point",
        "pareto-dominated",
        "pareto-equal-keeps",
        "pareto-between-points",
    ],
)
def test_a_trial_keeps_its_model_unless_dominated(
    values: list[float], front: list[list[float]], dirs: list[StudyDirection], keep: bool
) -> None:
    assert keeps_model(values, front, dirs) is keep
