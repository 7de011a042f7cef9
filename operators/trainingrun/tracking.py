"""The operator's I/O with MLflow and the Optuna storage, for TrainingRuns.

MLflow and Optuna are imported inside the methods that use them: the operator's other
kinds, `maestro --help` and the pure modules never pay for them. Every call blocks; the
Kopf handlers that use this are sync, so Kopf runs them in threads.

Each step is idempotent, so a handler that reruns after a crash or restart finds what the
last attempt created instead of creating it twice: the parent run is looked up by the
TrainingRun's uid tag, the study is created with load-if-exists, and a model version
already registered from the same run is reused.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping
from typing import Any

from maestro.operators.api.trainingrun import Tuning
from maestro.operators.core.registry import ModelNotFound, Registry
from maestro.operators.trainingrun.decide import StudyFacts, TrialFacts
from maestro.training import contract

log = logging.getLogger(__name__)

# Operator-owned tag telling the TrainingRun's parent run from its trials' nested runs.
TAG_ROLE = "maestro.trainingrun.role"
ROLE_PARENT = "parent"


class Tracking:
    """MLflow (tracking + registry) and Optuna storage clients, created on first use."""

    def __init__(self, tracking_uri: str, optuna_storage: str | None) -> None:
        self.registry = Registry(tracking_uri)
        self.optuna_storage = optuna_storage
        self._lock = threading.Lock()
        self._storage: Any = None

    # --- MLflow ------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        return self.registry.client

    def experiment_id(self, name: str) -> str:
        client = self.client  # imports MLflow safely first
        from mlflow.exceptions import MlflowException

        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        try:
            return str(self.client.create_experiment(name))
        except MlflowException:
            # Another run of the namespace created it at the same moment.
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return str(experiment.experiment_id)

    def ensure_parent_run(
        self, experiment: str, namespace: str, name: str, uid: str, tags: Mapping[str, str]
    ) -> str:
        """The TrainingRun's MLflow run: found by its uid tag, else created."""
        experiment_id = self.experiment_id(experiment)
        found = self.client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`{contract.TAG_TRAININGRUN_UID}` = '{uid}'"
                f" and tags.`{TAG_ROLE}` = '{ROLE_PARENT}'"
            ),
            max_results=1,
        )
        if found:
            return str(found[0].info.run_id)
        run = self.client.create_run(
            experiment_id,
            run_name=name,
            tags={
                contract.TAG_TRAININGRUN: f"{namespace}/{name}",
                contract.TAG_TRAININGRUN_UID: uid,
                TAG_ROLE: ROLE_PARENT,
                **tags,
            },
        )
        return str(run.info.run_id)

    def run_metrics(self, run_id: str) -> dict[str, float]:
        metrics = self.client.get_run(run_id).data.metrics
        # Status is JSON: NaN and infinities cannot be stored.
        return {
            key: float(value)
            for key, value in sorted(metrics.items())
            if isinstance(value, int | float) and math.isfinite(value)
        }

    def run_error(self, run_id: str) -> str | None:
        """Why the trainer said the run failed (contract.TAG_ERROR), if it said so."""
        error = self.client.get_run(run_id).data.tags.get(contract.TAG_ERROR)
        return str(error) if error else None

    def end_run(self, run_id: str, status: str) -> None:
        """Close the parent run as FINISHED, FAILED or KILLED, unless already closed."""
        run = self.client.get_run(run_id)
        if run.info.status in ("RUNNING", "SCHEDULED"):
            self.client.set_terminated(run_id, status)

    def register(
        self, run_id: str, name: str, alias: str, tags: Mapping[str, str]
    ) -> tuple[str, str]:
        """Register runs:/<run_id>/model as `name` (reusing a version already registered
        from this run) and point `alias` at it; return (version, model URI)."""
        _ = self.client  # imports MLflow safely first
        import mlflow
        from mlflow.exceptions import MlflowException

        model_uri = f"runs:/{run_id}/{contract.MODEL_ARTIFACT_PATH}"
        client = self.client
        existing = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
        if existing:
            version = str(min(existing, key=lambda v: int(v.version)).version)
        else:
            try:
                created = mlflow.register_model(model_uri, name, tags=dict(tags))
            except MlflowException as err:
                if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                    raise ModelNotFound(
                        f"run {run_id} logged no model under '{contract.MODEL_ARTIFACT_PATH}'"
                    ) from err
                raise
            version = str(created.version)
        client.set_registered_model_alias(name, alias, version)
        return version, model_uri

    # --- Optuna ------------------------------------------------------------------------

    @property
    def storage(self) -> Any:
        with self._lock:
            if self._storage is None:
                if not self.optuna_storage:
                    raise RuntimeError("no Optuna storage configured")
                import optuna

                from maestro.training.tuning import storage_url

                # One engine (connection pool) for the operator's lifetime; the URL names
                # the installed driver the same way the trainers' does.
                self._storage = optuna.storages.RDBStorage(storage_url(self.optuna_storage))
            return self._storage

    def create_study(self, study: str, tuning: Tuning) -> None:
        """Create the study as the trainers expect it (their own factory), if absent."""
        from maestro.training.tuning import create_study

        create_study(self.storage, study, tuning)

    def study_facts(self, study: str) -> StudyFacts:
        """Trial counts and best trial(s), summarised by the trainers' own helper."""
        import optuna

        from maestro.training.tuning import TrialSummary, summarize

        summary = summarize(optuna.load_study(study_name=study, storage=self.storage))

        def facts(trial: TrialSummary) -> TrialFacts:
            return TrialFacts(
                number=int(trial.number),
                values=tuple(float(v) for v in trial.values),
                params={k: _scalar(v) for k, v in sorted(trial.params.items())},
                run_id=trial.run_id,
            )

        pareto = tuple(facts(t) for t in summary.pareto_front)
        return StudyFacts(
            running=summary.running,
            completed=summary.completed,
            pruned=summary.pruned,
            failed=summary.failed,
            # Several objectives: the front is the answer; which member's model gets
            # registered is the operator's decision (trainingrun.decide.model_trial).
            best=facts(summary.best) if summary.best is not None and not pareto else None,
            pareto=pareto,
        )


def _scalar(value: Any) -> str | int | float | bool:
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)
