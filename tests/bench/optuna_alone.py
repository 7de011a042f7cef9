"""The search of `make bench-training` run by Optuna alone: one process, in-memory storage,
`study.optimize(n_jobs=...)`, calling the trainer functions `maestro train` calls.

Also runnable on its own (`python -m tests.bench.optuna_alone`), so the benchmark can time a
whole process, interpreter start and imports included, as it times the worker pods.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import optuna

SPACE = {
    "n_estimators": {"type": "int", "low": 10, "high": 120},
    "max_depth": {"type": "int", "low": 2, "high": 12},
    "min_samples_leaf": {"type": "int", "low": 1, "high": 8},
}
PARAMS = {"model": "random_forest", "test_size": 0.2}
DATASET = "sklearn://breast_cancer"


def tuning_spec(trials: int, parallelism: int) -> dict[str, Any]:
    return {
        "trials": trials,
        "parallelism": parallelism,
        "sampler": "TPE",
        "objectives": [{"metric": "accuracy", "direction": "maximize"}],
        "space": SPACE,
    }


def optuna_alone(trials: int, jobs: int) -> dict[str, float]:
    from maestro.operators.api.trainingrun import Tuning
    from maestro.training import contract
    from maestro.training.run import prepare
    from maestro.training.trainers import fit, resolve
    from maestro.training.tuning import distributions, make_sampler, suggest

    tuning = Tuning.model_validate(tuning_spec(trials, jobs))
    env = contract.TrainerEnvironment(framework="SKLearn", params=PARAMS, dataset_uri=DATASET)
    started = time.perf_counter()
    prepared = prepare(env, PARAMS)
    dists = distributions(tuning.space)

    def objective(trial: optuna.Trial) -> float:
        params = {**PARAMS, **{n: suggest(trial, n, d) for n, d in dists.items()}}
        spec = resolve("SKLearn", params, prepared.data.task)
        trained = fit(spec, prepared.data, seed=prepared.seed, on_step=lambda *_: None)
        return float(trained.metrics["accuracy"])

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=make_sampler(tuning, 0))
    study.optimize(objective, n_trials=trials, n_jobs=jobs)
    return {"wall": time.perf_counter() - started, "best": float(study.best_value)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.optuna_alone")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    print(json.dumps(optuna_alone(args.trials, args.jobs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
