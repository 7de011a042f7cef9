"""The facts `maestro lineage` shows for one registered model version, as one frozen value.

`maestro.governance.lineage.gather` builds it (the only I/O); the renderers in
`lineage_render` only read it. Pure: pydantic only.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Fact(BaseModel):
    """Base of every part: frozen, and unknown fields are a programming error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Dataset(Fact):
    """The data the model was trained on."""

    uri: str | None = Field(default=None, description="Where the data came from.")
    version: str | None = Field(default=None, description="The dataset version asked for.")
    name: str | None = Field(default=None, description="Name of the MLflow dataset input.")
    digest: str | None = Field(default=None, description="MLflow's digest of the data as read.")
    source_type: str | None = Field(default=None, description="MLflow's source type, e.g. http.")


class Training(Fact):
    """The MLflow run that logged the model, and the TrainingRun behind it."""

    run_id: str
    run_name: str | None = None
    experiment_id: str | None = None
    status: str | None = Field(default=None, description="MLflow run status, e.g. FINISHED.")
    trainingrun: str | None = Field(
        default=None, description="The TrainingRun resource, <namespace>/<name>."
    )
    trainingrun_uid: str | None = None
    parent_run_id: str | None = Field(default=None, description="Set on a tuning trial's run.")
    lineage_run_id: str = Field(
        description=(
            "The run the dataset input was read from: this run, or its parent (a tuning"
            " study's run) when only the parent logged it. Lineage tags this run lacks are"
            " read from the parent too."
        )
    )
    user: str | None = None
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(
        default_factory=dict, description="The run's own tags, MLflow's internal mlflow.* left out."
    )


class CodeVersion(Fact):
    """The code the model was trained with, as MLflow recorded it."""

    git_commit: str | None = None
    source_name: str | None = Field(default=None, description="Entry point or notebook run.")


class ModelVersion(Fact):
    """The registered model version itself."""

    name: str
    version: str
    source: str | None = None
    run_id: str | None = None
    status: str | None = None
    created_at: datetime | None = None
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = Field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


class Role(StrEnum):
    """What a ModelDeployment revision does with the version."""

    STABLE = "stable"
    CANARY = "canary"  # the candidate being rolled out, whatever the strategy
    PREVIOUS = "previous"  # blue/green: kept running for an instant rollback, no traffic


class Serving(Fact):
    """One ModelDeployment revision running the version now."""

    namespace: str
    deployment: str
    role: Role
    revision: str | None = None
    model_uri: str
    phase: str | None = None
    canary_weight: int | None = Field(
        default=None, description="Percent of traffic on the canary revision (canary role only)."
    )


class Deployments(Fact):
    """The ModelDeployments running the version, or why they could not be read."""

    known: bool = Field(description="False when the cluster could not be asked.")
    reason: str | None = Field(default=None, description="Why they are unknown.")
    serving: tuple[Serving, ...] = ()


class Lineage(Fact):
    """Data -> features -> training run -> model version -> deployments, in that order."""

    dataset: Dataset | None = None
    feature_service: str | None = Field(default=None, description="The Feast feature service.")
    training: Training | None = Field(
        default=None, description="None when the version names no run or its run is gone."
    )
    code: CodeVersion = Field(default_factory=CodeVersion)
    model: ModelVersion
    deployments: Deployments
