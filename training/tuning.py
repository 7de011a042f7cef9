"""Optuna studies for TrainingRun tuning: what the operator calls, and what workers share.

The operator calls `create_study` once before it starts the worker pods and `summarize` to
fill the TrainingRun status; the workers (`maestro.training.worker`) rebuild the same sampler
and pruner, since Optuna stores neither in the database. This module needs only Optuna and
the typed spec: no MLflow, no Kubernetes client.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from maestro.operators.api.trainingrun import (
    Direction,
    Pruner,
    Sampler,
    SearchParam,
    Tuning,
)
from maestro.training.contract import TRIAL_ATTR_RUN_ID
from maestro.training.errors import TrainingError

# A trial in one of these states holds one of the study's `trials` slots: finished trials
# (including failed ones, so a broken configuration cannot loop forever) and running ones.
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
SLOT_STATES = (*FINISHED_STATES, TrialState.RUNNING)

# Median pruning waits for this many completed trials and skips the first step (e.g. one
# epoch), whose value says little about where a trial ends.
MEDIAN_STARTUP_TRIALS = 5
MEDIAN_WARMUP_STEPS = 1


def storage_url(url: str) -> str:
    """Name the PostgreSQL driver this image has.

    SQLAlchemy 2.1 maps a bare postgresql:// to psycopg (3), while Maestro installs
    psycopg2; the operator's Secret holds the plain URL either way.
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres") and importlib.util.find_spec("psycopg") is None:
        return f"postgresql+psycopg2://{rest}"
    return url


def distributions(space: Mapping[str, SearchParam]) -> dict[str, BaseDistribution]:
    """tuning.space -> Optuna distributions (validated beyond what the CRD schema checks)."""
    out: dict[str, BaseDistribution] = {}
    for name, param in space.items():
        try:
            out[name] = _distribution(param)
        except ValueError as err:
            raise TrainingError(f"tuning.space.{name}: {err}") from err
    return out


def _distribution(param: SearchParam) -> BaseDistribution:
    if param.type == "categorical":
        if not param.choices:
            raise ValueError("choices is required when type is categorical")
        return CategoricalDistribution(list(param.choices))
    if param.low is None or param.high is None:
        raise ValueError("low and high are required when type is float or int")
    if param.log and param.step is not None:
        raise ValueError("log and step cannot be combined")
    if param.type == "int":
        bounds = (param.low, param.high, param.step or 1)
        if not all(float(v).is_integer() for v in bounds):
            raise ValueError("low, high and step of an int parameter must be whole numbers")
        low, high, step = (int(v) for v in bounds)
        return IntDistribution(low, high, log=param.log, step=step)
    return FloatDistribution(param.low, param.high, log=param.log, step=param.step)


def suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    """Ask `trial` for a value of `name` from `dist` through Optuna's public suggest API."""
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, list(dist.choices))
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)
    raise TypeError(f"unsupported distribution {dist!r}")


def directions(tuning: Tuning) -> list[StudyDirection]:
    return [
        StudyDirection.MAXIMIZE if o.direction is Direction.MAXIMIZE else StudyDirection.MINIMIZE
        for o in tuning.objectives
    ]


def make_sampler(tuning: Tuning, seed: int) -> optuna.samplers.BaseSampler:
    """The spec's sampler, seeded; workers pass MAESTRO_SEED + their index."""
    if tuning.sampler is Sampler.RANDOM:
        return optuna.samplers.RandomSampler(seed=seed)
    if tuning.sampler is Sampler.CMAES:
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if tuning.sampler is Sampler.NSGAII:
        # Optuna's default generation of 50 would leave a small study all random; a
        # generation of a fifth of the trials gives NSGA-II a few generations to evolve.
        population = max(4, min(50, tuning.trials // 5))
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    # constant_liar keeps parallel workers from piling onto the same region.
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def make_pruner(tuning: Tuning) -> optuna.pruners.BasePruner:
    if tuning.pruner is Pruner.MEDIAN and len(tuning.objectives) == 1:
        return optuna.pruners.MedianPruner(
            n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=MEDIAN_WARMUP_STEPS
        )
    # Optuna cannot prune multi-objective studies.
    return optuna.pruners.NopPruner()


def create_study(
    storage: str | optuna.storages.BaseStorage,
    name: str,
    tuning: Tuning,
    *,
    seed: int = 0,
) -> optuna.Study:
    """Create (or load, if it exists) the study a TrainingRun's workers share.

    Idempotent, so the operator may call it on every reconcile. `storage` is the RDB URL
    (e.g. postgresql://...) or an Optuna storage object.
    """
    study = optuna.create_study(
        storage=storage_url(storage) if isinstance(storage, str) else storage,
        study_name=name,
        directions=directions(tuning),
        sampler=make_sampler(tuning, seed),
        pruner=make_pruner(tuning),
        load_if_exists=True,
    )
    if study.directions != directions(tuning):
        have = [d.name.lower() for d in study.directions]
        want = [d.name.lower() for d in directions(tuning)]
        raise TrainingError(
            f"study {name} exists with directions {have}, but tuning.objectives ask for {want}"
        )
    return study


def objective_values(tuning: Tuning, metrics: Mapping[str, float], cost: float) -> list[float]:
    """The values a trial reports to Optuna: its objectives' metrics, cost-adjusted.

    With costWeight the single objective becomes metric - costWeight x cost when maximising
    and metric + costWeight x cost when minimising: cost always makes a trial worse.
    """
    values = []
    for objective in tuning.objectives:
        if objective.metric not in metrics:
            raise TrainingError(
                f"objective metric {objective.metric!r} was not logged by the trainer; it"
                f" logged: {', '.join(sorted(metrics))}"
            )
        value = float(metrics[objective.metric])
        if not math.isfinite(value):
            raise TrainingError(f"objective metric {objective.metric!r} is {value}")
        if tuning.cost_weight:
            sign = -1.0 if objective.direction is Direction.MAXIMIZE else 1.0
            value += sign * tuning.cost_weight * cost
        values.append(value)
    return values


def dominated(
    values: Sequence[float], by: Sequence[float], directions: Sequence[StudyDirection]
) -> bool:
    """Whether `by` is at least as good as `values` on every objective and better on one."""
    sign = [1.0 if d == StudyDirection.MAXIMIZE else -1.0 for d in directions]
    mine = [s * v for s, v in zip(sign, values, strict=True)]
    theirs = [s * v for s, v in zip(sign, by, strict=True)]
    return all(t >= m for t, m in zip(theirs, mine, strict=True)) and theirs != mine


def keeps_model(
    values: Sequence[float],
    front: Sequence[Sequence[float]],
    directions: Sequence[StudyDirection],
) -> bool:
    """A finished trial's model is worth storing unless a finished trial dominates it.

    The best trial (or every Pareto-optimal one) is dominated by nothing, so it always
    keeps its model and can be registered; the rest skip the most expensive step of a
    trial's bookkeeping. Dominated by some finished trial means dominated by a member of
    the current front, so comparing with the front is enough.
    """
    return not any(dominated(values, other, directions) for other in front)


@dataclass(frozen=True)
class TrialSummary:
    """One trial worth reporting: the best one, or a point of the Pareto front."""

    number: int
    values: list[float]
    params: dict[str, Any]
    run_id: str | None = None


@dataclass(frozen=True)
class TuningSummary:
    """Trial counts and the best trial(s): what TrainingRun status shows."""

    total: int = 0
    completed: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0
    # Single objective: the best trial. Several objectives: the first Pareto-optimal one.
    best: TrialSummary | None = None
    # Several objectives: every Pareto-optimal trial (study.best_trials); else empty.
    pareto_front: list[TrialSummary] = field(default_factory=list)

    @property
    def finished(self) -> int:
        return self.completed + self.pruned + self.failed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def model_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The finished trials whose models a search keeps, by trial number.

    Several objectives: the Pareto front. One objective: the earliest of the trials tied
    for the best value. Optuna's own `best_trial` breaks ties however the database
    orders rows; the earliest is stable, which workers ending at different times rely on
    to agree on which model the best trial is.
    """
    trials = sorted(study.best_trials, key=_number)
    return trials if len(study.directions) > 1 else trials[:1]


def summarize(study: optuna.Study) -> TuningSummary:
    """Count the study's trials and pick its best trial(s). Reads the storage, writes nothing."""
    trials = study.get_trials(deepcopy=False)
    counts = {state: 0 for state in TrialState}
    for trial in trials:
        counts[trial.state] += 1
    best: TrialSummary | None = None
    front: list[TrialSummary] = []
    if counts[TrialState.COMPLETE]:
        optimal = [_trial_summary(t) for t in model_trials(study)]
        best = optimal[0] if optimal else None
        if len(study.directions) > 1:
            front = optimal
    return TuningSummary(
        total=len(trials),
        completed=counts[TrialState.COMPLETE],
        pruned=counts[TrialState.PRUNED],
        failed=counts[TrialState.FAIL],
        running=counts[TrialState.RUNNING],
        waiting=counts[TrialState.WAITING],
        best=best,
        pareto_front=front,
    )


def _number(trial: FrozenTrial) -> int:
    return trial.number


def _trial_summary(trial: FrozenTrial) -> TrialSummary:
    run_id = trial.user_attrs.get(TRIAL_ATTR_RUN_ID)
    return TrialSummary(
        number=trial.number,
        values=list(_values(trial)),
        params=dict(trial.params),
        run_id=str(run_id) if run_id else None,
    )


def _values(trial: FrozenTrial) -> Sequence[float]:
    return trial.values or []
