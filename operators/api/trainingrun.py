"""TrainingRun: train (and optionally tune) a model, log it to MLflow and register it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from maestro.operators.api.common import (
    IntOrString,
    KindInfo,
    ObjectReference,
    PrinterColumn,
    Resource,
    ResourceRequirements,
    ScalarValue,
    SpecModel,
    StatusBase,
    StatusModel,
    age_column,
    phase_column,
    ready_column,
    reason_column,
)

PARAMS_MAX = 64


class Framework(StrEnum):
    """Training framework; picks the Kubeflow job kind (or a plain Job)."""

    PYTORCH = "PyTorch"
    TENSORFLOW = "TensorFlow"
    XGBOOST = "XGBoost"
    SKLEARN = "SKLearn"
    GENERIC = "Generic"


DISTRIBUTED_FRAMEWORKS = (Framework.PYTORCH, Framework.TENSORFLOW, Framework.XGBOOST)


class Dataset(SpecModel):
    """Training data, recorded as lineage."""

    uri: str = Field(
        min_length=1,
        max_length=2048,
        description="Dataset location, e.g. s3://bucket/iris.parquet.",
    )
    version: str | None = Field(
        default=None, max_length=253, description="Dataset version (tag, hash or snapshot id)."
    )


class MLflowSettings(SpecModel):
    """Where the run is logged in MLflow."""

    experiment: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="MLflow experiment name; defaults to the TrainingRun's namespace.",
    )


class RegisterAs(SpecModel):
    """Register the trained model in the MLflow registry and point an alias at it."""

    name: str = Field(min_length=1, max_length=253, description="Registered model name.")
    alias: str = Field(
        default="candidate",
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Alias set on the new version, e.g. candidate.",
    )


class Direction(StrEnum):
    """Whether larger or smaller values of an objective are better."""

    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"


class Objective(SpecModel):
    """One metric the study optimises (several make a multi-objective, Pareto, study)."""

    metric: str = Field(
        min_length=1, max_length=253, description="Metric name the trainer logs to MLflow."
    )
    direction: Direction = Field(default=Direction.MAXIMIZE, description="maximize or minimize.")


class Sampler(StrEnum):
    """Optuna sampler."""

    TPE = "TPE"
    RANDOM = "Random"
    CMAES = "CMAES"
    NSGAII = "NSGAII"


class Pruner(StrEnum):
    """Optuna pruner for unpromising trials."""

    MEDIAN = "Median"
    NONE = "None"


class ParamType(StrEnum):
    """Distribution of a search-space parameter."""

    FLOAT = "float"
    INT = "int"
    CATEGORICAL = "categorical"


class SearchParam(SpecModel):
    """One dimension of the search space."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.type != 'categorical' || has(self.choices)",
                    "message": "choices is required when type is categorical",
                    "fieldPath": ".choices",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "self.type == 'categorical' || (has(self.low) && has(self.high))",
                    "message": "low and high are required when type is float or int",
                    "fieldPath": ".low",
                    "reason": "FieldValueRequired",
                },
                {
                    "rule": "!has(self.low) || !has(self.high) || self.low < self.high",
                    "message": "low must be less than high",
                    "fieldPath": ".low",
                },
                {
                    "rule": "!self.log || !has(self.low) || self.low > 0.0",
                    "message": "log scale needs low greater than 0",
                    "fieldPath": ".low",
                },
            ]
        }
    }

    type: ParamType = Field(description="float, int or categorical.")
    low: float | None = Field(default=None, description="Lower bound (float and int).")
    high: float | None = Field(default=None, description="Upper bound (float and int).")
    log: bool = Field(default=False, description="Sample on a log scale (float and int).")
    step: float | None = Field(
        default=None, gt=0, description="Discretisation step (float and int)."
    )
    choices: list[IntOrString] | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description=(
            "Candidate values (categorical): integers or strings; quote other values,"
            ' e.g. "0.5" or "true" (typed so the API server can check the other rules).'
        ),
    )


class Tuning(SpecModel):
    """Hyper-parameter search with Optuna; trials run as parallel pods sharing one RDB."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.parallelism <= self.trials",
                    "message": "tuning.parallelism must be less than or equal to tuning.trials",
                    "fieldPath": ".parallelism",
                },
                {
                    "rule": "!has(self.costWeight) || self.objectives.size() == 1",
                    "message": "tuning.costWeight needs exactly one objective",
                    "fieldPath": ".costWeight",
                },
                {
                    "rule": "self.sampler != 'CMAES' || self.objectives.size() == 1",
                    "message": "tuning.sampler CMAES supports a single objective only",
                    "fieldPath": ".sampler",
                },
            ]
        }
    }

    trials: int = Field(default=20, ge=1, le=10000, description="Number of trials.")
    parallelism: int = Field(
        default=1, ge=1, le=100, description="Trials running at the same time (<= trials)."
    )
    objectives: list[Objective] = Field(
        min_length=1,
        max_length=8,
        description="Metrics to optimise; more than one gives a Pareto front.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["metric"],
        },
    )
    sampler: Sampler = Field(default=Sampler.TPE, description="Optuna sampler.")
    pruner: Pruner = Field(default=Pruner.MEDIAN, description="Optuna pruner.")
    cost_weight: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Cost-aware objective: optimise metric - costWeight x cost, where cost is the"
            " trial's logged `cost` metric."
        ),
    )
    space: dict[str, SearchParam] = Field(
        min_length=1,
        max_length=64,
        description="Search space: parameter name -> distribution.",
    )


class TrainingRunSpec(SpecModel):
    """Desired state of a TrainingRun."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": (
                        "self.workers == 1"
                        " || self.framework in ['PyTorch', 'TensorFlow', 'XGBoost']"
                    ),
                    "message": (
                        "workers > 1 needs framework PyTorch, TensorFlow or XGBoost;"
                        " SKLearn and Generic run as one batch Job"
                    ),
                    "fieldPath": ".workers",
                }
            ]
        }
    }

    framework: Framework = Field(description="PyTorch, TensorFlow, XGBoost, SKLearn or Generic.")
    image: str | None = Field(
        default=None,
        max_length=512,
        description="Trainer image; defaults to the operator's configured Maestro training image.",
    )
    command: list[str] | None = Field(
        default=None,
        max_length=64,
        description="Entrypoint and arguments; defaults to the Maestro trainer for the framework.",
    )
    params: dict[str, ScalarValue] = Field(
        default_factory=dict,
        max_length=PARAMS_MAX,
        description="Hyper-parameters passed to the trainer (name -> string, number or boolean).",
    )
    workers: int = Field(default=1, ge=1, le=128, description="Worker replicas (>= 1).")
    resources: ResourceRequirements | None = Field(
        default=None, description="Compute resources of each worker."
    )
    dataset: Dataset | None = Field(default=None, description="Training data (lineage).")
    feature_service: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        description="Feast feature service the trainer reads historical features from.",
    )
    mlflow: MLflowSettings = Field(
        default_factory=MLflowSettings, description="MLflow tracking settings."
    )
    register_as: RegisterAs | None = Field(
        default=None, description="Register the model on success and set an alias."
    )
    backoff_limit: int = Field(
        default=3, ge=0, le=100, description="Retries before the run is marked Failed."
    )
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, description="Wall-clock limit for the whole run, seconds."
    )
    tuning: Tuning | None = Field(
        default=None, description="Optional Optuna hyper-parameter search."
    )


class TrainingPhase(StrEnum):
    """Lifecycle phase of a TrainingRun."""

    PENDING = "Pending"
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class TrialCounts(StatusModel):
    """Optuna trial counters."""

    total: int = Field(default=0, ge=0, description="Trials requested.")
    running: int = Field(default=0, ge=0, description="Trials running.")
    completed: int = Field(default=0, ge=0, description="Trials completed.")
    pruned: int = Field(default=0, ge=0, description="Trials pruned.")
    failed: int = Field(default=0, ge=0, description="Trials failed.")


class BestTrial(StatusModel):
    """Best trial so far (for a multi-objective study: one point of the Pareto front)."""

    number: int = Field(ge=0, description="Optuna trial number.")
    values: list[float] = Field(
        default_factory=list, max_length=8, description="Objective values, in objective order."
    )
    params: dict[str, ScalarValue] = Field(
        default_factory=dict, max_length=PARAMS_MAX, description="Parameters of the trial."
    )
    mlflow_run_id: str | None = Field(
        default=None, description="MLflow run of the trial (nested under the TrainingRun's run)."
    )


PARETO_MAX = 32


class TrainingRunStatus(StatusBase):
    """Observed state of a TrainingRun."""

    phase: TrainingPhase | None = Field(default=None, description="Lifecycle phase.")
    job_ref: ObjectReference | None = Field(
        default=None, description="The Kubeflow job or batch Job running the training."
    )
    mlflow_run_id: str | None = Field(default=None, description="MLflow run id.")
    trials: TrialCounts | None = Field(default=None, description="Trial counters when tuning.")
    study: str | None = Field(default=None, description="Optuna study name when tuning.")
    best_trial: BestTrial | None = Field(
        default=None, description="Best trial of a single-objective study."
    )
    pareto_front: list[BestTrial] = Field(
        default_factory=list,
        max_length=PARETO_MAX,
        description="Pareto-optimal trials of a multi-objective study (at most 32 shown).",
    )
    metrics: dict[str, float] = Field(
        default_factory=dict, max_length=64, description="Final metrics logged by the trainer."
    )
    model_version: str | None = Field(default=None, description="Registered model version.")
    model_uri: str | None = Field(
        default=None, description="The trained model that was registered (runs:/<run>/model)."
    )
    start_time: datetime | None = Field(default=None, description="When training started.")
    completion_time: datetime | None = Field(default=None, description="When training ended.")


class TrainingRun(Resource):
    """Trains a model (optionally with an Optuna study) and registers it in MLflow."""

    INFO = KindInfo(
        kind="TrainingRun",
        plural="trainingruns",
        singular="trainingrun",
        short_names=["tr"],
        description=(
            "TrainingRun trains a model as a Kubeflow job or batch Job, optionally runs an"
            " Optuna study, logs to MLflow and registers the model."
        ),
        columns=[
            phase_column(),
            ready_column(),
            PrinterColumn(
                name="Framework",
                type="string",
                json_path=".spec.framework",
                description="Training framework.",
            ),
            PrinterColumn(
                name="Trials",
                type="integer",
                json_path=".status.trials.completed",
                description="Completed tuning trials.",
            ),
            PrinterColumn(
                name="Model Version",
                type="string",
                json_path=".status.modelVersion",
                description="Registered model version.",
            ),
            reason_column(),
            age_column(),
        ],
    )

    spec: TrainingRunSpec = Field(description="Desired state.")
    status: TrainingRunStatus = Field(
        default_factory=TrainingRunStatus, description="Observed state."
    )
