"""MLflow logging for trainers and trials, through one client per process.

Per-run overhead matters (a study logs one nested run per trial), so this module keeps the
number of requests per run small: tags go with `create_run`, params, metrics (per step and
final) and tags go in one `log_batch`, and the model's signature and pip requirements are
computed once per process instead of once per model (requirement inference alone starts a
subprocess).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT, MLFLOW_PARENT_RUN_ID

from maestro.training import contract
from maestro.training.contract import TrainerEnvironment
from maestro.training.data import Split
from maestro.training.mlflow_plugins import load_mlflow_plugins_without_feast
from maestro.training.trainers import XGBOOST, Trained

log = logging.getLogger(__name__)
T = TypeVar("T")

# MLflow's log_batch limits per request.
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100
MAX_PARAM_LENGTH = 6000
# Step metrics are sent in batches at least this often, so a long training shows progress.
FLUSH_SECONDS = 10.0
DEFAULT_EXPERIMENT = "Default"


def lineage_tags(env: TrainerEnvironment) -> dict[str, str]:
    """The tags every run of a TrainingRun carries (lineage: data -> features -> model)."""
    tags = {
        contract.TAG_TRAININGRUN: env.trainingrun,
        contract.TAG_TRAININGRUN_UID: env.trainingrun_uid,
        contract.TAG_DATASET_URI: env.dataset_uri,
        contract.TAG_DATASET_VERSION: env.dataset_version,
        contract.TAG_FEATURE_SERVICE: env.feature_service,
    }
    return {key: value for key, value in tags.items() if value}


def param_strings(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as MLflow stores them (strings), truncated to its length limit."""
    return {key: str(value)[:MAX_PARAM_LENGTH] for key, value in params.items()}


class Tracker:
    """One MlflowClient plus the per-process caches that keep per-run cost low."""

    def __init__(self, tracking_uri: str | None) -> None:
        load_mlflow_plugins_without_feast()
        # Unless told otherwise: no run URLs on stdout (it carries `maestro train`'s result),
        # and no uv project detection, which would add the working directory's uv.lock to
        # every model although the requirements are given explicitly.
        for name in ("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT",):
            os.environ.setdefault(name, "true")
        for name in ("MLFLOW_UV_AUTO_DETECT", "MLFLOW_LOG_UV_FILES"):
            os.environ.setdefault(name, "false")
        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
        self.client = MlflowClient()
        self._signatures: dict[tuple[str, str], ModelSignature] = {}
        self._requirements: dict[str, list[str]] = {}

    # --- runs -------------------------------------------------------------------------
    def use_experiment(self, name: str | None, parent_run_id: str | None) -> str:
        """The experiment runs go to: the parent run's, else `name` (created if missing)."""
        if parent_run_id:
            experiment_id = self.client.get_run(parent_run_id).info.experiment_id
        else:
            name = name or DEFAULT_EXPERIMENT
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                try:
                    experiment_id = self.client.create_experiment(name)
                except MlflowException:
                    # Another worker created it first.
                    found = self.client.get_experiment_by_name(name)
                    if found is None:
                        raise
                    experiment_id = found.experiment_id
            else:
                experiment_id = experiment.experiment_id
        # log_model files the model under the active experiment, not the run's.
        mlflow.set_experiment(experiment_id=experiment_id)
        return str(experiment_id)

    def create_run(
        self,
        experiment_id: str,
        *,
        name: str | None = None,
        tags: Mapping[str, str] | None = None,
        parent_run_id: str | None = None,
    ) -> str:
        all_tags = dict(tags or {})
        if parent_run_id:
            all_tags[MLFLOW_PARENT_RUN_ID] = parent_run_id
        run = self.client.create_run(experiment_id, tags=all_tags, run_name=name)
        return str(run.info.run_id)

    def resume(self, run_id: str) -> dict[str, str]:
        """Mark an existing run (the operator's) running again; returns its logged params."""
        self.client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        return dict(self.client.get_run(run_id).data.params)

    def log(
        self,
        run_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        steps: Iterable[Metric] = (),
        tags: Mapping[str, str] | None = None,
        step: int = 0,
    ) -> None:
        """Params, final metrics (at `step`), step metrics and tags in as few requests as
        MLflow allows."""
        now = int(time.time() * 1000)
        finals = (Metric(k, float(v), now, step) for k, v in (metrics or {}).items())
        all_metrics = [*steps, *finals]
        all_params = [Param(k, v) for k, v in param_strings(params or {}).items()]
        all_tags = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        while all_metrics or all_params or all_tags:
            self.client.log_batch(
                run_id,
                metrics=all_metrics[:MAX_METRICS],
                params=all_params[:MAX_PARAMS],
                tags=all_tags[:MAX_TAGS],
            )
            all_metrics = all_metrics[MAX_METRICS:]
            all_params = all_params[MAX_PARAMS:]
            all_tags = all_tags[MAX_TAGS:]

    def finish(self, run_id: str, status: str, *, error: str | None = None) -> None:
        if error:
            self.client.set_tag(run_id, contract.TAG_ERROR, error[:5000])
        self.client.set_terminated(run_id, status=status)

    # --- artifacts --------------------------------------------------------------------
    def log_model(self, run_id: str, trained: Trained, data: Split) -> str:
        """Log the model under MODEL_ARTIFACT_PATH with signature and input example."""
        example = data.example()
        key = (trained.flavor, data.task.value)
        signature = self._signatures.get(key)
        if signature is None:
            signature = infer_signature(example, trained.model.predict(example))
            self._signatures[key] = signature
        common: dict[str, Any] = {
            "name": contract.MODEL_ARTIFACT_PATH,
            "run_id": run_id,
            "signature": signature,
            "input_example": example,
            "pip_requirements": self._pip_requirements(trained.flavor),
        }
        if trained.flavor == XGBOOST:
            import mlflow.xgboost

            info = mlflow.xgboost.log_model(trained.model, **common)
        else:
            import mlflow.sklearn

            skops = trained.model_format == "skops"
            info = mlflow.sklearn.log_model(
                trained.model,
                serialization_format=trained.model_format,
                skops_trusted_types=list(trained.trusted_types) or None if skops else None,
                **common,
            )
        return str(info.model_uri)

    def _pip_requirements(self, flavor: str) -> list[str]:
        cached = self._requirements.get(flavor)
        if cached is not None:
            return cached
        import mlflow.sklearn

        requirements = list(mlflow.sklearn.get_default_pip_requirements())
        if flavor == XGBOOST:
            # The serving image installs what the model names; the CPU-only wheel keeps
            # NVIDIA's NCCL (hundreds of MB) out of it.
            requirements.append(f"xgboost-cpu=={importlib.metadata.version('xgboost-cpu')}")
        self._requirements[flavor] = requirements
        return requirements

    def log_dataset(
        self,
        run_id: str,
        frame: pd.DataFrame,
        *,
        uri: str,
        target: str,
        version: str | None = None,
    ) -> None:
        """Record the training data as the run's input (MLflow dataset lineage)."""
        from mlflow.data.pandas_dataset import from_pandas

        name = uri.rstrip("/").rsplit("/", 1)[-1] or uri
        if version:
            name = f"{name}@{version}"
        try:
            dataset = from_pandas(frame, source=uri, targets=target, name=name)
        except MlflowException:
            # A URI scheme MLflow has no source type for (e.g. sklearn://): keep the name.
            dataset = from_pandas(frame, targets=target, name=name)
        entity = dataset._to_mlflow_entity()
        context = InputTag(MLFLOW_DATASET_CONTEXT, "training")
        inputs = [DatasetInput(entity, tags=[context])]
        retry_on_conflict(lambda: self.client.log_inputs(run_id, datasets=inputs))

    def log_json(self, run_id: str, payload: Any, artifact_file: str) -> None:
        self.client.log_text(run_id, json.dumps(payload, indent=2, default=str), artifact_file)


def is_conflict(err: Exception) -> bool:
    """An MLflow server on a SQL store inserting a row that another request inserted at the
    same moment (it checks, then inserts): the row now exists, so asking again succeeds."""
    text = str(err)
    return isinstance(err, MlflowException) and (
        "UniqueViolation" in text or "duplicate key" in text or "UNIQUE constraint" in text
    )


def retry_on_conflict(call: Callable[[], T], attempts: int = 4) -> T:
    """`call()`, asked again after a unique-key conflict (tuning workers of one study log
    the same dataset at once); any other error is raised at once."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except MlflowException as err:
            if attempt == attempts or not is_conflict(err):
                raise
            log.info("MLflow reported a concurrent insert; asking again (%d)", attempt)
            time.sleep(random.uniform(0.05, 0.2) * attempt)
    raise AssertionError("unreachable")


class StepRecorder:
    """Collects per-step metrics and sends them in batches instead of a request per step."""

    def __init__(self, tracker: Tracker, run_id: str, flush_seconds: float = FLUSH_SECONDS):
        self._tracker = tracker
        self._run_id = run_id
        self._flush_seconds = flush_seconds
        self._pending: list[Metric] = []
        self._last_flush = time.monotonic()
        # Final metrics are logged at the last step, so a metric's latest value is the final
        # one and its history does not jump back to step 0.
        self.last_step = 0

    def __call__(self, step: int, metrics: Mapping[str, float]) -> None:
        self.last_step = max(self.last_step, step)
        now = int(time.time() * 1000)
        self._pending.extend(Metric(k, float(v), now, step) for k, v in metrics.items())
        if time.monotonic() - self._last_flush >= self._flush_seconds:
            self.flush()

    def take(self) -> list[Metric]:
        """The unsent metrics, to go with the run's final log_batch."""
        pending, self._pending = self._pending, []
        return pending

    def flush(self) -> None:
        pending = self.take()
        if pending:
            self._tracker.log(self._run_id, steps=pending)
        self._last_flush = time.monotonic()


def run_name(env: TrainerEnvironment, suffix: str | None = None) -> str | None:
    """A readable run name: the TrainingRun's name, plus e.g. trial-3."""
    base = env.trainingrun.split("/", 1)[-1] if env.trainingrun else None
    if suffix is None:
        return base
    return f"{base}-{suffix}" if base else suffix
