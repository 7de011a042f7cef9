"""ABTest: champion vs challenger of one ModelDeployment, decided by statistics."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from maestro.operators.api.common import (
    Duration,
    KindInfo,
    ModelUri,
    ObjectName,
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


class ChallengerModel(SpecModel):
    """The challenger model."""

    uri: ModelUri


class Challenger(SpecModel):
    """The model competing against the deployment's current (champion) model."""

    model: ChallengerModel = Field(description="The challenger model.")


class SplitMode(StrEnum):
    """How requests are assigned to champion or challenger."""

    RANDOM = "Random"
    STICKY = "Sticky"


class Split(SpecModel):
    """Traffic assignment."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.mode != 'Sticky' || has(self.key)",
                    "message": "split.key is required when split.mode is Sticky",
                    "fieldPath": ".key",
                    "reason": "FieldValueRequired",
                }
            ]
        }
    }

    mode: SplitMode = Field(
        default=SplitMode.RANDOM,
        description="Random per request, or Sticky: the same user always sees the same model.",
    )
    key: str | None = Field(
        default=None,
        max_length=253,
        pattern=r"^[A-Za-z0-9-]+$",
        description="Request header whose hashed value assigns a user (Sticky), e.g. x-user-id.",
    )


class MetricType(StrEnum):
    """Shape of the outcome metric; picks the statistical test."""

    PROPORTION = "Proportion"
    CONTINUOUS = "Continuous"


class Bandit(SpecModel):
    """Thompson-sampling bandit: shift traffic towards the better model while testing.

    An object rather than a bool so the exploration floor can be set next to the switch.
    """

    enabled: bool = Field(default=False, description="Adapt traffic with Thompson sampling.")
    min_traffic_percent: int = Field(
        default=5,
        ge=0,
        le=50,
        description="Traffic percent each model keeps at least, so neither stops being observed.",
    )


class ABTestSpec(SpecModel):
    """Desired state of an ABTest."""

    deployment: ObjectName = Field(
        description="Name of the ModelDeployment (same namespace) whose model is the champion."
    )
    challenger: Challenger = Field(description="The model competing with the champion.")
    traffic_percent: int = Field(
        default=50, ge=1, le=99, description="Percent of traffic (1-99) sent to the challenger."
    )
    split: Split = Field(default_factory=Split, description="How requests are assigned.")
    metric: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[a-zA-Z_][a-zA-Z0-9_:]*$",
        description="Outcome metric compared between the models (reported through /feedback).",
    )
    metric_type: MetricType = Field(
        default=MetricType.PROPORTION,
        description=(
            "Proportion (two-proportion z-test, e.g. conversion) or Continuous (Welch t-test)."
        ),
    )
    higher_is_better: bool = Field(
        default=True, description="Whether a larger metric value is the better outcome."
    )
    alpha: float = Field(
        default=0.05, gt=0, le=0.5, description="Significance level (0 < alpha <= 0.5)."
    )
    power: float = Field(
        default=0.8, gt=0, lt=1, description="Statistical power used for the required sample size."
    )
    minimum_detectable_effect: float = Field(
        default=0.02,
        gt=0,
        description="Smallest absolute difference in the metric worth detecting.",
    )
    sequential: bool = Field(
        default=True,
        description="Use a sequential test that stays valid when results are checked continuously.",
    )
    max_duration: Duration = Field(
        default="168h",
        description="Conclude as Inconclusive when no decision is reached by then, e.g. 72h.",
    )
    auto_promote: bool = Field(
        default=True,
        description="Apply a PromoteChallenger decision to the ModelDeployment automatically.",
    )
    bandit: Bandit = Field(
        default_factory=Bandit, description="Optional Thompson-sampling traffic allocation."
    )


class ABTestPhase(StrEnum):
    """Lifecycle phase of an ABTest."""

    PENDING = "Pending"
    RUNNING = "Running"
    CONCLUDED = "Concluded"
    FAILED = "Failed"


class Decision(StrEnum):
    """Outcome of the test."""

    PROMOTE_CHALLENGER = "PromoteChallenger"
    KEEP_CHAMPION = "KeepChampion"
    INCONCLUSIVE = "Inconclusive"


class ArmStats(StatusModel):
    """Observed outcomes of one model."""

    samples: int = Field(default=0, ge=0, description="Outcomes received.")
    mean: float | None = Field(default=None, description="Mean (Continuous) or rate (Proportion).")
    traffic_percent: float | None = Field(default=None, description="Current traffic share.")


class Interval(StatusModel):
    """Confidence interval of the lift."""

    lower: float = Field(description="Lower bound.")
    upper: float = Field(description="Upper bound.")
    level: float = Field(description="Confidence level, e.g. 0.95.")


class ABTestStatus(StatusBase):
    """Observed state of an ABTest."""

    phase: ABTestPhase | None = Field(default=None, description="Lifecycle phase.")
    champion_model_uri: str | None = Field(
        default=None, description="The champion's model when the test started (resolved)."
    )
    challenger_model_uri: str | None = Field(
        default=None, description="spec.challenger.model.uri resolved to a registry version."
    )
    champion: ArmStats | None = Field(default=None, description="Champion figures.")
    challenger: ArmStats | None = Field(default=None, description="Challenger figures.")
    lift: float | None = Field(default=None, description="Challenger minus champion.")
    p_value: float | None = Field(default=None, description="p-value of the test.")
    confidence_interval: Interval | None = Field(default=None, description="Lift interval.")
    required_samples: int | None = Field(
        default=None, ge=0, description="Samples per model needed for the requested power."
    )
    decision: Decision | None = Field(default=None, description="Outcome, once decided.")
    decision_reason: str | None = Field(default=None, description="Why this decision.")
    start_time: datetime | None = Field(default=None, description="When traffic was split.")
    srm_p_value: float | None = Field(
        default=None, description="Sample-ratio-mismatch p-value of the assignment counts."
    )
    end_time: datetime | None = Field(default=None, description="When the test concluded.")


class ABTest(Resource):
    """Champion vs challenger of one ModelDeployment, decided by statistics."""

    INFO = KindInfo(
        kind="ABTest",
        plural="abtests",
        singular="abtest",
        short_names=["abt"],
        description=(
            "ABTest splits a ModelDeployment's traffic between its champion and a challenger"
            " model and decides by a statistical test which one stays."
        ),
        columns=[
            PrinterColumn(
                name="Deployment",
                type="string",
                json_path=".spec.deployment",
                description="ModelDeployment under test.",
            ),
            phase_column(),
            ready_column(),
            reason_column(priority=0),
            PrinterColumn(
                name="Traffic",
                type="integer",
                json_path=".spec.trafficPercent",
                description="Percent of traffic on the challenger.",
            ),
            PrinterColumn(
                name="P-Value",
                type="number",
                json_path=".status.pValue",
                description="p-value of the test.",
            ),
            PrinterColumn(
                name="Decision",
                type="string",
                json_path=".status.decision",
                description="Outcome, once decided.",
            ),
            age_column(),
        ],
    )

    spec: ABTestSpec = Field(description="Desired state.")
    status: ABTestStatus = Field(default_factory=ABTestStatus, description="Observed state.")
