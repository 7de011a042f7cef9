"""`maestro train`: one training, or an Optuna worker when MAESTRO_TUNING is set.

Everything comes in through `TrainerEnvironment` (the operator's contract); nothing is read
from the environment or parsed at import time.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

import pandas as pd
from pydantic import ValidationError

from maestro.training import contract
from maestro.training.contract import TrainerEnvironment
from maestro.training.data import DEFAULT_TARGET, Split, load_frame, split
from maestro.training.distributed import DistributedEnvironment
from maestro.training.errors import TrainingError
from maestro.training.trainers import (
    StepCallback,
    Trained,
    TrainerSpec,
    coerce,
    fit,
    parse_task,
    resolve,
)

if TYPE_CHECKING:  # MLflow is imported only by the code that logs
    from maestro.training.tracking import Tracker

log = logging.getLogger(__name__)

# Exit codes: 2 for bad input (fix the spec; retrying will not help), 1 for anything else.
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, contract.EXIT_BAD_INPUT
# Trained by torch_trainer (imported only then: torch is the optional `pytorch` extra).
PYTORCH = "pytorch"
# Across the replicas of an XGBoostJob through XGBoost's collective (xgboost_collective).
XGBOOST = "xgboost"


@dataclass(frozen=True)
class Prepared:
    """The data and settings a training (or every trial of a study) starts from."""

    frame: pd.DataFrame
    data: Split
    target: str
    seed: int


def prepare(env: TrainerEnvironment, params: Mapping[str, Any]) -> Prepared:
    """Load and split the dataset named by the environment (pure apart from the read)."""
    if not env.dataset_uri:
        raise TrainingError(
            f"no dataset: set spec.dataset.uri ({contract.DATASET_URI}), e.g. sklearn://iris"
        )
    target = str(params.get("target", DEFAULT_TARGET))
    seed = coerce(params.get("seed", env.seed), 0)
    test_size = coerce(params.get("test_size", 0.25), 0.0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TrainingError(f"params.seed must be an integer, got {seed!r}")
    if not isinstance(test_size, int | float) or isinstance(test_size, bool):
        raise TrainingError(f"params.test_size must be a number, got {test_size!r}")
    if env.feature_service:
        from maestro.training.features import FeastSettings, load_historical_features

        frame = load_historical_features(
            env.dataset_uri,
            env.feature_service,
            FeastSettings.from_environment(env),
            target=target,
        )
    else:
        frame = load_frame(env.dataset_uri)
    data = split(
        frame, target=target, test_size=float(test_size), seed=seed, task=parse_task(params)
    )
    return Prepared(frame, data, target, seed)


def logged_params(
    params: Mapping[str, Any], spec: TrainerSpec, prepared: Prepared
) -> dict[str, Any]:
    """What a run records as params: the spec's, plus the choices the trainer made."""
    return {
        **params,
        "model": spec.model,
        "task": spec.task.value,
        "seed": prepared.seed,
        "target": prepared.target,
    }


@dataclass(frozen=True)
class TrainingOutcome:
    run_id: str
    metrics: dict[str, float]
    model_uri: str


# How a run fits its model: spec, the prepared data and the per-step reporter -> the model.
Fit = Callable[[TrainerSpec, "Prepared", StepCallback], Trained]


def fit_here(spec: TrainerSpec, prepared: Prepared, on_step: StepCallback) -> Trained:
    return fit(spec, prepared.data, seed=prepared.seed, on_step=on_step)


def run_training(
    env: TrainerEnvironment, *, prepared: Prepared | None = None, fit_with: Fit = fit_here
) -> TrainingOutcome:
    """Train once and log into the operator's run (or a new run when standalone).
    `fit_with` fits the model (a distributed XGBoost replica fits in its collective)."""
    from maestro.training.tracking import StepRecorder, Tracker, lineage_tags, run_name

    prepared = prepared or prepare(env, env.params)
    spec = resolve(env.framework, env.params, prepared.data.task)
    tracker = Tracker(env.tracking_uri)
    experiment_id = tracker.use_experiment(env.experiment, env.parent_run_id)
    tags = {**lineage_tags(env), "maestro.framework": env.framework}
    existing: dict[str, str] = {}
    if env.parent_run_id:
        run_id = env.parent_run_id
        existing = tracker.resume(run_id)
    else:
        run_id = tracker.create_run(experiment_id, name=run_name(env), tags=tags)
    try:
        params = {
            k: v for k, v in logged_params(env.params, spec, prepared).items() if k not in existing
        }
        tracker.log(run_id, params=params, tags=tags)
        log_training_data(tracker, run_id, env, prepared)
        steps = StepRecorder(tracker, run_id)
        started = time.process_time()
        trained = fit_with(spec, prepared, steps)
        cost = time.process_time() - started
        model_uri = tracker.log_model(run_id, trained, prepared.data)
        metrics = {**trained.metrics, contract.METRIC_COST: cost}
        tracker.log(run_id, metrics=metrics, steps=steps.take(), step=steps.last_step)
    except BaseException as err:
        tracker.finish(run_id, "FAILED", error=f"{type(err).__name__}: {err}")
        raise
    tracker.finish(run_id, "FINISHED")
    return TrainingOutcome(run_id, metrics, model_uri)


def record_error(env: TrainerEnvironment, err: Exception) -> None:
    """Say on the operator's run why the input was refused: the TrainingRun's status shows
    it, where the pod's log may be gone. Best effort: the exit code still tells bad input."""
    if not env.parent_run_id:
        return
    from maestro.training.tracking import Tracker

    try:
        Tracker(env.tracking_uri).log(env.parent_run_id, tags={contract.TAG_ERROR: str(err)[:5000]})
    except Exception:
        log.warning("could not record the error on run %s", env.parent_run_id, exc_info=True)


def log_training_data(
    tracker: Tracker, run_id: str, env: TrainerEnvironment, prepared: Prepared
) -> None:
    """The training data as the run's input: MLflow's dataset lineage."""
    tracker.log_dataset(
        run_id,
        prepared.frame,
        uri=env.dataset_uri or "",
        target=prepared.target,
        version=env.dataset_version,
    )


def main(environ: Mapping[str, str], *, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Entry point of `maestro train`; returns the process exit code."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # MLflow warns on every model that pip's own version is unknown; it is irrelevant here.
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    try:
        env = TrainerEnvironment.from_env(environ)
    except (ValueError, ValidationError) as exc:
        print(f"error: bad trainer environment: {exc}", file=err)
        return EXIT_BAD_INPUT
    pytorch = env.framework.lower() == PYTORCH
    try:
        if env.tuning is not None:
            if pytorch:
                raise TrainingError(
                    f"spec.tuning is not supported for framework {env.framework}: tune an"
                    " SKLearn or XGBoost model, or train the PyTorch model without tuning"
                )
            from maestro.training.worker import run_worker

            summary = run_worker(env)
            print(json.dumps({"study": env.optuna_study, **summary.to_dict()}), file=out)
        elif pytorch:
            from maestro.training.torch_trainer import run_torch_training

            replica = run_torch_training(env, DistributedEnvironment.from_env(environ))
            print(json.dumps(replica.to_dict()), file=out)
        elif (
            env.framework.lower() == XGBOOST
            and DistributedEnvironment.from_env(environ).distributed
        ):
            from maestro.training.xgboost_collective import run_xgboost_replica

            replica_summary = run_xgboost_replica(
                env, DistributedEnvironment.from_env(environ), environ
            )
            print(json.dumps(replica_summary), file=out)
        else:
            outcome = run_training(env)
            print(
                json.dumps(
                    {
                        "run_id": outcome.run_id,
                        "model_uri": outcome.model_uri,
                        "metrics": outcome.metrics,
                    }
                ),
                file=out,
            )
    except TrainingError as exc:
        print(f"error: {exc}", file=err)
        record_error(env, exc)
        return EXIT_BAD_INPUT
    except Exception as exc:
        log.exception("training failed")
        print(f"error: training failed: {type(exc).__name__}: {exc}", file=err)
        return EXIT_FAILED
    return EXIT_OK
