"""What a run whose job succeeded reports: its study's trials, the MLflow run that holds
the model (the run itself, or the best trial), that run's metrics, and the model
registered under the run's alias."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from maestro.operators.api.trainingrun import TrainingRunSpec
from maestro.operators.core.verdict import Verdict
from maestro.operators.trainingrun.decide import (
    StudyFacts,
    model_trial,
    no_trial_completed,
    registration_failed,
    succeeded,
    trial_status,
    trials_status,
)
from maestro.operators.trainingrun.render import study_name
from maestro.training import contract

if TYPE_CHECKING:  # imported lazily: it is the module that loads MLflow and Optuna
    from maestro.operators.trainingrun.tracking import Tracking


def study_fields(facts: StudyFacts, trials: int) -> dict[str, Any]:
    """Status fields of a tuning run's study."""
    fields: dict[str, Any] = {"trials": trials_status(facts, trials)}
    if facts.best is not None:
        fields["bestTrial"] = trial_status(facts.best)
    if facts.pareto:
        fields["paretoFront"] = [trial_status(t) for t in facts.pareto[:32]]
    return fields


def outcome(
    tracking: Tracking,
    spec: TrainingRunSpec,
    run_id: str,
    run: tuple[str, str, str],
    ref: Mapping[str, Any],
) -> tuple[Verdict, dict[str, Any]]:
    """The verdict and status fields of a run (`run`: namespace, name, uid) whose job
    succeeded and whose MLflow parent run is `run_id`."""
    namespace, name, uid = run
    extra: dict[str, Any] = {"jobRef": dict(ref)}
    model_run: str | None = run_id
    what = ""
    if spec.tuning is not None:
        facts = tracking.study_facts(study_name(uid))
        extra.update(study_fields(facts, spec.tuning.trials))
        if facts.completed == 0:
            return no_trial_completed(facts, spec.tuning.trials), extra
        trial = model_trial(facts, spec.tuning.objectives)
        model_run = trial.run_id if trial is not None else None
        what = f"best trial {trial.number}" if trial is not None else ""
    extra["metrics"] = tracking.run_metrics(model_run) if model_run else {}
    if spec.register_as is None:
        return succeeded(f"{what} logged to MLflow" if what else None), extra
    from maestro.operators.core.registry import ModelNotFound

    if model_run is None:
        return registration_failed(f"{what or 'the best trial'} recorded no MLflow run id"), extra
    try:
        version, model_uri = tracking.register(
            model_run,
            spec.register_as.name,
            spec.register_as.alias,
            {
                contract.TAG_TRAININGRUN: f"{namespace}/{name}",
                contract.TAG_TRAININGRUN_UID: uid,
            },
        )
    except ModelNotFound as err:
        return registration_failed(str(err)), extra
    extra.update(modelVersion=version, modelUri=model_uri)
    registered = (
        f"registered {spec.register_as.name} version {version}"
        f" as @{spec.register_as.alias}" + (f" from {what}" if what else "")
    )
    return succeeded(registered), extra
