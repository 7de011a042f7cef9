"""DriftCheck: scheduled data-drift detection between reference and live data."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from maestro.operators.api.common import (
    Duration,
    KindInfo,
    ObjectName,
    ObjectReference,
    PositiveDuration,
    PrinterColumn,
    Resource,
    SpecModel,
    StatusBase,
    StatusModel,
    age_column,
    phase_column,
    ready_column,
    reason_column,
)

# Five cron fields, or one of the @-macros CronJob understands.
CRON_PATTERN = (
    r"^(@(yearly|annually|monthly|weekly|daily|hourly)"
    r"|([0-9A-Za-z*/,?-]+ +){4}[0-9A-Za-z*/,?-]+)$"
)


class Reference(SpecModel):
    """Reference data: a dataset URI or the dataset a TrainingRun logged (exactly one)."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.uri) != has(self.trainingRun)",
                    "message": "reference needs exactly one of uri or trainingRun",
                }
            ]
        }
    }

    uri: str | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="Reference dataset location, e.g. s3://bucket/iris/train.parquet.",
    )
    training_run: ObjectName | None = Field(
        default=None, description="TrainingRun (same namespace) whose logged dataset is used."
    )


class Current(SpecModel):
    """Current data: the serving pods' prediction log over a window, or a URI (exactly one)."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.window) != has(self.uri)",
                    "message": "current needs exactly one of window or uri",
                }
            ],
        }
    }

    window: Duration | None = Field(
        default=None, description="Prediction-log window ending at the run time, e.g. 24h."
    )
    uri: str | None = Field(
        default=None, min_length=1, max_length=2048, description="Current dataset location."
    )


class Thresholds(SpecModel):
    """Drift-share levels: the share of columns that drifted (0-1)."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.warning < self.critical",
                    "message": "thresholds.warning must be less than thresholds.critical",
                    "fieldPath": ".warning",
                }
            ],
        }
    }

    warning: float = Field(default=0.3, ge=0, le=1, description="Drift share for Warning.")
    critical: float = Field(default=0.5, ge=0, le=1, description="Drift share for Critical.")


class StatTest(StrEnum):
    """Per-column statistical test; auto picks one by column type and size."""

    AUTO = "auto"
    KS = "ks"
    PSI = "psi"
    CHISQUARE = "chisquare"
    WASSERSTEIN = "wasserstein"
    JENSENSHANNON = "jensenshannon"


class Severity(StrEnum):
    """Drift severity."""

    OK = "Ok"
    WARNING = "Warning"
    CRITICAL = "Critical"


class Retrain(SpecModel):
    """Start a TrainingRun when drift reaches a severity."""

    template: ObjectName = Field(
        description="TrainingRun (same namespace) whose spec is copied into the new run."
    )
    min_severity: Severity = Field(
        default=Severity.CRITICAL, description="Lowest severity that triggers retraining."
    )
    cooldown: PositiveDuration = Field(
        default="6h",
        description=(
            "Shortest time between two retrains started by this check; a TrainingRun it"
            " started that is still running also holds the next one back."
        ),
    )


class OnDrift(SpecModel):
    """Actions taken when drift is detected."""

    retrain: Retrain | None = Field(default=None, description="Retrain from a template.")


class DriftCheckSpec(SpecModel):
    """Desired state of a DriftCheck."""

    deployment: ObjectName = Field(
        description="ModelDeployment (same namespace) whose prediction log is checked."
    )
    schedule: str = Field(
        default="0 * * * *",
        max_length=100,
        pattern=CRON_PATTERN,
        description="Cron schedule (5 fields or @hourly-style macro).",
    )
    suspend: bool = Field(default=False, description="Pause scheduling new runs.")
    reference: Reference = Field(description="Reference data.")
    current: Current = Field(
        default_factory=lambda: Current(window="24h"),
        description="Current data; defaults to the last 24h of predictions.",
    )
    thresholds: Thresholds = Field(default_factory=Thresholds, description="Severity levels.")
    columns: list[str] | None = Field(
        default=None,
        max_length=1024,
        description="Columns to check; all feature columns when empty.",
    )
    stat_test: StatTest = Field(default=StatTest.AUTO, description="Per-column statistical test.")
    on_drift: OnDrift | None = Field(default=None, description="Actions on drift.")


class DriftPhase(StrEnum):
    """Lifecycle phase of a DriftCheck."""

    PENDING = "Pending"
    ACTIVE = "Active"
    SUSPENDED = "Suspended"
    FAILED = "Failed"


class ColumnResult(StatusModel):
    """Drift result for one column."""

    name: str = Field(description="Column name.")
    test: str = Field(description="Statistical test used.")
    score: float | None = Field(
        default=None, description="p-value (ks, chisquare, z) or distance (the others)."
    )
    threshold: float | None = Field(default=None, description="The test's drift threshold.")
    drifted: bool = Field(description="Whether the column drifted.")


class DriftCheckStatus(StatusBase):
    """Observed state of a DriftCheck."""

    phase: DriftPhase | None = Field(default=None, description="Lifecycle phase.")
    cron_job_ref: ObjectReference | None = Field(default=None, description="The CronJob.")
    last_run_time: datetime | None = Field(default=None, description="When the last run ended.")
    drift_share: float | None = Field(
        default=None, ge=0, le=1, description="Share of drifted columns in the last run."
    )
    severity: Severity | None = Field(default=None, description="Severity of the last run.")
    drifted_columns: list[str] = Field(
        default_factory=list, max_length=1024, description="Columns that drifted."
    )
    columns: list[ColumnResult] = Field(
        default_factory=list, max_length=1024, description="Per-column results."
    )
    report_uri: str | None = Field(default=None, description="Where the HTML report is.")
    mlflow_run_id: str | None = Field(default=None, description="MLflow run of the last check.")
    last_retrain: str | None = Field(
        default=None, description="Name of the last TrainingRun started by this check."
    )
    last_retrain_time: datetime | None = Field(
        default=None, description="When this check last started a TrainingRun."
    )
    last_job: str | None = Field(default=None, description="The Job of the last run reported.")
    last_run_reason: str | None = Field(
        default=None, description="How the last run ended: NoDrift, DriftDetected or why not."
    )
    last_run_message: str | None = Field(default=None, description="The last run, in words.")
    reference_uri: str | None = Field(default=None, description="The reference dataset used.")
    columns_truncated: bool | None = Field(
        default=None,
        description="Only the drifted columns are listed here (the report has them all).",
    )


class DriftCheck(Resource):
    """Scheduled drift detection for one ModelDeployment."""

    INFO = KindInfo(
        kind="DriftCheck",
        plural="driftchecks",
        singular="driftcheck",
        short_names=["dc"],
        description=(
            "DriftCheck compares a ModelDeployment's live inputs with reference data on a"
            " schedule and can start retraining when drift is critical."
        ),
        columns=[
            PrinterColumn(
                name="Deployment",
                type="string",
                json_path=".spec.deployment",
                description="ModelDeployment checked.",
            ),
            PrinterColumn(
                name="Schedule", type="string", json_path=".spec.schedule", description="Cron."
            ),
            phase_column(),
            ready_column(),
            reason_column(priority=0),
            PrinterColumn(
                name="Severity",
                type="string",
                json_path=".status.severity",
                description="Severity of the last run.",
            ),
            PrinterColumn(
                name="Drift Share",
                type="number",
                json_path=".status.driftShare",
                description="Share of drifted columns.",
            ),
            PrinterColumn(
                name="Last Run",
                type="date",
                json_path=".status.lastRunTime",
                description="When the last run ended.",
            ),
            age_column(),
        ],
    )

    spec: DriftCheckSpec = Field(description="Desired state.")
    status: DriftCheckStatus = Field(
        default_factory=DriftCheckStatus, description="Observed state."
    )
