"""The contract between the TrainingRun operator and the trainer pods it creates.

The operator renders these environment variables into every trainer container; the
programs run by `maestro train` read them through `TrainerEnvironment`. Keeping both
sides on one module means a renamed variable breaks a test, not a training run.
Pure: no I/O, no third-party imports beyond pydantic.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# --- environment variable names -------------------------------------------------------
TRACKING_URI = "MLFLOW_TRACKING_URI"
EXPERIMENT = "MLFLOW_EXPERIMENT_NAME"
TRAININGRUN = "MAESTRO_TRAININGRUN"  # "<namespace>/<name>"
TRAININGRUN_UID = "MAESTRO_TRAININGRUN_UID"
PARENT_RUN_ID = "MAESTRO_MLFLOW_PARENT_RUN_ID"  # the run the operator created for this TrainingRun
FRAMEWORK = "MAESTRO_FRAMEWORK"  # PyTorch | TensorFlow | XGBoost | SKLearn | Generic
PARAMS = "MAESTRO_PARAMS"  # JSON object of spec.params
DATASET_URI = "MAESTRO_DATASET_URI"
DATASET_VERSION = "MAESTRO_DATASET_VERSION"
FEATURE_SERVICE = "MAESTRO_FEATURE_SERVICE"
# Feast (read only when FEATURE_SERVICE is set). The repo folder holds feature_store.yaml;
# the others override it: the registry file (relative paths are taken from the repo folder),
# the Redis online store's connection string (host:port[,db=N]) and the Feast project.
FEAST_REPO = "MAESTRO_FEAST_REPO"  # default: the repo packaged in maestro.training.feature_repo
FEAST_REGISTRY = "MAESTRO_FEAST_REGISTRY"
FEAST_REDIS = "MAESTRO_FEAST_REDIS"
FEAST_PROJECT = "MAESTRO_FEAST_PROJECT"
SEED = "MAESTRO_SEED"
# Tuning only:
OPTUNA_STORAGE = "MAESTRO_OPTUNA_STORAGE"  # always from a Secret (secretKeyRef), never inline
OPTUNA_STUDY = "MAESTRO_OPTUNA_STUDY"  # the study the operator created; workers load it
TUNING = "MAESTRO_TUNING"  # JSON of spec.tuning (camelCase, as in the CRD)
# Which of the parallel tuning workers this is (0..parallelism-1). Kubernetes sets it in
# Indexed Jobs; the worker seeds its sampler with MAESTRO_SEED + index so that parallel
# workers do not propose the same parameters.
WORKER_INDEX = "JOB_COMPLETION_INDEX"
# Seconds between a running trial's heartbeats; a trial without one for twice that is
# failed by the next worker that claims a slot (its pod was killed mid-trial).
OPTUNA_HEARTBEAT = "MAESTRO_OPTUNA_HEARTBEAT_SECONDS"
DEFAULT_HEARTBEAT_SECONDS = 10
POD_NAME = "HOSTNAME"  # Kubernetes sets it to the pod's name; recorded on each trial

# `maestro train`'s exit code for bad input (fix the spec; retrying will not help): the
# operator's Job fails at once on it instead of retrying up to spec.backoffLimit.
EXIT_BAD_INPUT = 2

# --- MLflow conventions ---------------------------------------------------------------
MODEL_ARTIFACT_PATH = "model"  # every trainer logs its model under this artifact path
TAG_TRAININGRUN = "maestro.trainingrun"  # "<namespace>/<name>" on every run
TAG_TRAININGRUN_UID = "maestro.trainingrun.uid"
TAG_TRIAL_NUMBER = "maestro.trial.number"  # on each trial's nested run
# "logged", or why not: a trial dominated by a finished one stores no model.
TAG_TRIAL_MODEL = "maestro.trial.model"
TAG_DATASET_URI = "maestro.lineage.dataset.uri"
TAG_DATASET_VERSION = "maestro.lineage.dataset.version"
TAG_FEATURE_SERVICE = "maestro.lineage.feature_service"
TAG_TRIAL_STATE = "maestro.trial.state"  # COMPLETE | PRUNED | FAIL, on each trial's run
TAG_ERROR = "maestro.error"  # why a run or trial failed
METRIC_COST = "cost"  # CPU-seconds of a trial's training, logged on its run
# What each tuning worker records on the parent run when it finishes.
TAG_BEST_TRIAL_NUMBER = "maestro.tuning.best_trial.number"
TAG_BEST_TRIAL_RUN_ID = "maestro.tuning.best_trial.run_id"
TAG_BEST_TRIAL_PARAMS = "maestro.tuning.best_trial.params"  # JSON object
TAG_PARETO_FRONT = "maestro.tuning.pareto_front"  # JSON list of trial numbers
TAG_TRIAL_COUNTS = "maestro.tuning.trials"  # JSON {total, completed, pruned, failed, running}
METRIC_BEST_VALUE = "best_value"  # single objective: the best trial's objective value
PARETO_FRONT_ARTIFACT = "pareto_front.json"  # [{number, values, params, run_id}]
# Optuna trial user attribute holding the trial's MLflow run id.
TRIAL_ATTR_RUN_ID = "mlflow_run_id"
# Optuna trial user attribute holding the measured cost (CPU-seconds) of the trial.
TRIAL_ATTR_COST = "cost_cpu_seconds"
# Optuna trial user attributes: the worker (pod) that ran the trial, and the wall-clock
# seconds of its training alone (fit + evaluate), so per-trial overhead can be measured.
TRIAL_ATTR_WORKER = "worker"
TRIAL_ATTR_FIT_SECONDS = "fit_seconds"


class TrainerEnvironment(BaseModel):
    """What a trainer pod is told, parsed from its environment."""

    model_config = ConfigDict(frozen=True)

    tracking_uri: str | None = None
    experiment: str | None = None
    trainingrun: str | None = None
    trainingrun_uid: str | None = None
    parent_run_id: str | None = None
    framework: str = "Generic"
    params: dict[str, Any] = Field(default_factory=dict)
    dataset_uri: str | None = None
    dataset_version: str | None = None
    feature_service: str | None = None
    feast_repo: str | None = None
    feast_registry: str | None = None
    feast_redis: str | None = None
    feast_project: str | None = None
    seed: int = 0
    optuna_storage: str | None = None
    optuna_study: str | None = None
    tuning: dict[str, Any] | None = None
    worker_index: int = 0
    pod_name: str | None = None
    heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TrainerEnvironment:
        def opt(name: str) -> str | None:
            value = env.get(name)
            return value if value else None

        tuning = opt(TUNING)
        return cls(
            tracking_uri=opt(TRACKING_URI),
            experiment=opt(EXPERIMENT),
            trainingrun=opt(TRAININGRUN),
            trainingrun_uid=opt(TRAININGRUN_UID),
            parent_run_id=opt(PARENT_RUN_ID),
            framework=env.get(FRAMEWORK) or "Generic",
            params=json.loads(env.get(PARAMS) or "{}"),
            dataset_uri=opt(DATASET_URI),
            dataset_version=opt(DATASET_VERSION),
            feature_service=opt(FEATURE_SERVICE),
            feast_repo=opt(FEAST_REPO),
            feast_registry=opt(FEAST_REGISTRY),
            feast_redis=opt(FEAST_REDIS),
            feast_project=opt(FEAST_PROJECT),
            seed=int(env.get(SEED) or 0),
            optuna_storage=opt(OPTUNA_STORAGE),
            optuna_study=opt(OPTUNA_STUDY),
            tuning=json.loads(tuning) if tuning else None,
            worker_index=int(env.get(WORKER_INDEX) or 0),
            pod_name=opt(POD_NAME),
            heartbeat_seconds=int(env.get(OPTUNA_HEARTBEAT) or DEFAULT_HEARTBEAT_SECONDS),
        )
