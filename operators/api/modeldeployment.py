"""ModelDeployment: serve one MLflow model with a rollout strategy.

Over 400 lines on purpose, not split: every field carries its description and
validation; the CRD schema is generated from this file, and one kind's schema is
reviewed in one place.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field, JsonValue, field_validator, model_validator

from maestro.monitoring.metric_names import REQUEST_DURATION_BUCKETS
from maestro.operators.api.access import Caller
from maestro.operators.api.common import (
    ENV_NAME_PATTERN,
    Duration,
    KindInfo,
    ModelUri,
    PositiveDuration,
    PrinterColumn,
    Resource,
    ResourceRequirements,
    SpecModel,
    StatusBase,
    StatusModel,
    age_column,
    phase_column,
    ready_column,
    reason_column,
)


class ModelRef(SpecModel):
    """The model to serve."""

    uri: ModelUri
    name: str | None = Field(
        default=None,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description=(
            "Name the model is served under (Open Inference Protocol /v2/models/{name});"
            " defaults to the ModelDeployment name."
        ),
    )
    require_approval: bool = Field(
        default=False,
        description=(
            "For a models:/NAME@ALIAS uri: roll out only a version whose move to the alias"
            " was approved (`maestro model promote`, recorded in the audit log). A version"
            " the alias was moved to any other way is held at AwaitingApproval while the"
            " current revision keeps serving."
        ),
    )


class StrategyType(StrEnum):
    """How a new model revision replaces the running one."""

    ROLLING = "Rolling"
    BLUE_GREEN = "BlueGreen"
    CANARY = "Canary"
    SHADOW = "Shadow"


Percent = Annotated[int, Field(ge=1, le=100)]


class CanaryAnalysis(SpecModel):
    """Prometheus gates every canary step must pass; a failed gate rolls back."""

    interval: Duration = Field(
        default="1m", description="How often the canary's metrics are evaluated."
    )
    max_error_rate: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Highest allowed share of 5xx responses of the canary revision (0-1).",
    )
    max_latency_p95_ms: int = Field(
        default=500, ge=1, description="Highest allowed p95 latency of the canary, milliseconds."
    )
    min_requests: int = Field(
        default=100,
        ge=0,
        description="Requests the canary must have served in a step before it can be judged.",
    )
    max_failed_checks: int = Field(
        default=2,
        ge=1,
        le=100,
        description="Failed evaluations tolerated before the rollout is rolled back.",
    )


class CanaryStrategy(SpecModel):
    """Weighted steps, each held for stepDuration and gated by the analysis."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": (
                        "self.steps.isSorted()"
                        " && self.steps.all(s, self.steps.exists_one(t, t == s))"
                    ),
                    "message": (
                        "canary.steps must be strictly ascending percentages, e.g. [10, 50, 100]"
                    ),
                    "fieldPath": ".steps",
                    "reason": "FieldValueInvalid",
                }
            ]
        }
    }

    steps: list[Percent] = Field(
        default_factory=lambda: [10, 50, 100],
        min_length=1,
        max_length=10,
        description="Traffic percentages (1-100) sent to the new revision, strictly ascending.",
    )
    step_duration: Duration = Field(
        default="5m", description="How long each step is held before the next one."
    )
    analysis: CanaryAnalysis = Field(
        default_factory=CanaryAnalysis,
        description="Metric gates evaluated during every step.",
    )


class ShadowStrategy(SpecModel):
    """Mirror part of the traffic to the new revision and discard its responses."""

    percent: Percent = Field(
        default=10, description="Percentage of requests (1-100) mirrored to the shadow revision."
    )


class BlueGreenStrategy(SpecModel):
    """Bring the new revision up next to the old one, then switch all traffic at once."""

    auto_promote: bool = Field(
        default=True,
        description="Switch traffic once the new revision is ready; false waits for approval.",
    )
    scale_down_delay: Duration = Field(
        default="5m", description="How long the old revision is kept after the switch."
    )


class Strategy(SpecModel):
    """Rollout strategy for new model revisions."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.canary) || self.type == 'Canary'",
                    "message": "strategy.canary is only allowed when strategy.type is Canary",
                    "fieldPath": ".canary",
                },
                {
                    "rule": "!has(self.shadow) || self.type == 'Shadow'",
                    "message": "strategy.shadow is only allowed when strategy.type is Shadow",
                    "fieldPath": ".shadow",
                },
                {
                    "rule": "!has(self.blueGreen) || self.type == 'BlueGreen'",
                    "message": "strategy.blueGreen is only allowed when strategy.type is BlueGreen",
                    "fieldPath": ".blueGreen",
                },
            ],
        }
    }

    type: StrategyType = Field(default=StrategyType.ROLLING, description="Rollout strategy.")
    canary: CanaryStrategy | None = Field(
        default=None, description="Canary settings (type Canary); defaults apply when omitted."
    )
    shadow: ShadowStrategy | None = Field(
        default=None, description="Shadow settings (type Shadow); defaults apply when omitted."
    )
    blue_green: BlueGreenStrategy | None = Field(
        default=None, description="Blue/green settings (type BlueGreen)."
    )


class Replicas(SpecModel):
    """Replica bounds for the autoscaler."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.min <= self.max",
                    "message": "replicas.min must be less than or equal to replicas.max",
                    "fieldPath": ".min",
                }
            ],
        }
    }

    min: int = Field(default=1, ge=1, le=1000, description="Fewest serving replicas.")
    max: int = Field(default=3, ge=1, le=1000, description="Most serving replicas.")


# Seconds and minutes only: CEL's duration() (which bounds these below) has no days, and
# the HPA takes at most 30 min periods and 1 h stabilisation windows.
HPA_DURATION_PATTERN = r"^([0-9]+(s|m))+$"
HpaDuration = Annotated[str, Field(max_length=16, pattern=HPA_DURATION_PATTERN)]


class ScalingRules(SpecModel):
    """How fast one direction of scaling may go (an HPA behavior rule)."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "duration(self.stabilizationWindow) <= duration('60m')",
                    "message": "stabilizationWindow must be at most 60m",
                    "fieldPath": ".stabilizationWindow",
                },
                {
                    "rule": "duration(self.period) >= duration('1s')"
                    " && duration(self.period) <= duration('30m')",
                    "message": "period must be between 1s and 30m",
                    "fieldPath": ".period",
                },
            ],
        }
    }

    stabilization_window: HpaDuration = Field(
        description="Recommendations over this window are considered; the most cautious wins."
    )
    max_percent: int = Field(
        ge=1, le=1000, description="At most this percent of the current replicas per period."
    )
    max_pods: int = Field(ge=1, le=1000, description="Or at most this many pods per period.")
    period: HpaDuration = Field(description="The period the limits apply to.")


class ScalingBehavior(SpecModel):
    """Scale up fast, down gradually: the HPA `behavior` (defaults: up to double, or 4
    pods, every 30 s at once; down by at most half a minute after 5 min of lower need)."""

    scale_up: ScalingRules = Field(
        default_factory=lambda: ScalingRules(
            stabilization_window="0s", max_percent=100, max_pods=4, period="30s"
        ),
        description="Scaling up.",
    )
    scale_down: ScalingRules = Field(
        default_factory=lambda: ScalingRules(
            stabilization_window="5m", max_percent=50, max_pods=1, period="60s"
        ),
        description="Scaling down.",
    )


class Autoscaling(SpecModel):
    """HorizontalPodAutoscaler (autoscaling/v2) targets."""

    enabled: bool = Field(
        default=True, description="Create an HPA; false pins the replica count to replicas.min."
    )
    target_cpu_utilization: int = Field(
        default=70,
        ge=1,
        le=100,
        alias="targetCPUUtilization",
        description="Average CPU utilisation (percent of requests) the HPA aims for.",
    )
    target_memory_utilization: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Average memory utilisation (percent of requests) the HPA aims for.",
    )
    target_requests_per_second: int | None = Field(
        default=None,
        ge=1,
        description="Requests per second per replica the HPA aims for (custom metric).",
    )
    behavior: ScalingBehavior = Field(
        default_factory=ScalingBehavior,
        description="How fast the HPA may scale up and down.",
    )


class SecretRef(SpecModel):
    """A Vault secret injected into the serving container as an environment variable."""

    vault_path: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^[A-Za-z0-9_.\-/]+$",
        description="KV v2 path in Vault, e.g. secret/data/maestro/iris.",
    )
    key: str = Field(min_length=1, max_length=253, description="Key inside the Vault secret.")
    env: str = Field(
        min_length=1,
        # It also names the Vault Agent annotations (agent-inject-template-<env>), whose
        # name part Kubernetes limits to 63 characters.
        max_length=41,
        pattern=ENV_NAME_PATTERN,
        description="Environment variable name the value is exposed as (at most 41 characters).",
    )


# A latency objective's threshold is one of the request-duration histogram's bucket bounds
# (the SLI counts the requests in the bucket at that bound), in whole milliseconds.
LATENCY_THRESHOLDS_MS = [
    round(b * 1000) for b in REQUEST_DURATION_BUCKETS if b * 1000 == round(b * 1000)
]


class LatencyObjective(SpecModel):
    """Share of prediction requests answered within a threshold."""

    threshold_ms: int = Field(
        description=(
            "Latency threshold in milliseconds; one of the serving histogram's bucket bounds:"
            f" {', '.join(str(t) for t in LATENCY_THRESHOLDS_MS)}."
        ),
        json_schema_extra={"enum": list[JsonValue](LATENCY_THRESHOLDS_MS)},
    )
    percent: float = Field(
        gt=0, lt=100, description="Percent of requests within the threshold, e.g. 99."
    )

    @field_validator("threshold_ms")
    @classmethod
    def _a_bucket_bound(cls, value: int) -> int:
        if value not in LATENCY_THRESHOLDS_MS:
            raise ValueError(f"thresholdMs must be one of {LATENCY_THRESHOLDS_MS}")
        return value


class ServiceLevelObjective(SpecModel):
    """Objectives the deployment is held to, over a rolling 30 days: rendered into SLI
    recording rules and multi-window multi-burn-rate alerts (page at 14.4x over 1h and 5m
    or 6x over 6h and 30m; ticket at 1x over 3d and 6h)."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.availability) || has(self.latency)",
                    "message": "slo needs an availability or a latency objective",
                }
            ],
        }
    }

    availability: float | None = Field(
        default=None,
        gt=0,
        lt=100,
        description="Percent of prediction requests answered without a 5xx, e.g. 99.9.",
    )
    latency: LatencyObjective | None = Field(
        default=None, description="Percent of requests answered within a threshold."
    )
    min_requests: int = Field(
        default=100,
        ge=0,
        le=1_000_000_000,
        description=(
            "Least requests in an alert's long window (1h, 6h, 3d) for it to fire: with less"
            " traffic a single error is no reason to page."
        ),
    )

    @model_validator(mode="after")
    def _some_objective(self) -> ServiceLevelObjective:
        if self.availability is None and self.latency is None:
            raise ValueError("slo needs an availability or a latency objective")
        return self


class ModelDeploymentSpec(SpecModel):
    """Desired state of a ModelDeployment."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "self.grpcPort != self.port",
                    "message": "grpcPort must differ from port",
                }
            ]
        }
    }

    model: ModelRef = Field(description="The model to serve.")
    image: str | None = Field(
        default=None,
        max_length=512,
        description="Serving image; defaults to the operator's configured Maestro serving image.",
    )
    port: int = Field(default=8080, ge=1, le=65535, description="Container port of the server.")
    grpc_port: int = Field(
        default=8081,
        ge=1,
        le=65535,
        description="Container port of the server's gRPC endpoint (the Open Inference Protocol's"
        " GRPCInferenceService); the Service exposes it on port 8081, named grpc.",
    )

    @model_validator(mode="after")
    def _distinct_ports(self) -> ModelDeploymentSpec:
        # The CRD's CEL rule refuses new objects; this also catches one stored before
        # grpcPort existed with port 8081 (the default grpcPort), whose pods would otherwise
        # crash-loop on a port clash instead of the object saying what to fix.
        if self.grpc_port == self.port:
            raise ValueError(
                f"grpcPort must differ from port (both {self.port}): set spec.grpcPort"
            )
        return self

    strategy: Strategy = Field(
        default_factory=Strategy, description="How new model revisions are rolled out."
    )
    progress_deadline: PositiveDuration = Field(
        default="10m",
        description=(
            "How long a revision may wait for the replicas it needs to be ready (e.g. 10m, 1h):"
            " a new revision that misses it is rolled back, a first revision is reported"
            " Failed. Not zero."
        ),
    )
    replicas: Replicas = Field(default_factory=Replicas, description="Replica bounds.")
    autoscaling: Autoscaling = Field(
        default_factory=Autoscaling, description="Autoscaling targets."
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Compute resources of each serving container."
    )
    secrets: list[SecretRef] = Field(
        default_factory=list,
        max_length=32,
        description="Vault secrets exposed to the server as environment variables.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["env"]},
    )
    slo: ServiceLevelObjective | None = Field(
        default=None,
        description=(
            "Service level objectives: SLI recording rules and burn-rate alerts in the"
            " deployment's PrometheusRule."
        ),
    )
    callers: list[Caller] = Field(
        default_factory=list,
        max_length=32,
        description=(
            "Who may call the model: Istio admits only their mTLS identities (mutual TLS is"
            " STRICT) and the NetworkPolicy only their namespaces. Empty: any pod of the"
            " ModelDeployment's own namespace. Prometheus may always read /metrics."
        ),
    )


class DeploymentPhase(StrEnum):
    """Lifecycle phase of a ModelDeployment."""

    PENDING = "Pending"  # nothing deployed yet: the model or the operator's settings missing
    PROGRESSING = "Progressing"  # a revision is coming up or being rolled out
    AVAILABLE = "Available"  # the stable revision serves with all its replicas
    DEGRADED = "Degraded"  # it has served, and now serves short of replicas or a model
    ROLLED_BACK = "RolledBack"  # a new revision failed; the stable one serves
    FAILED = "Failed"  # nothing can serve it: an unusable spec, a first revision stuck


class AnalysisResult(StatusModel):
    """Figures of the last canary analysis."""

    time: datetime | None = Field(default=None, description="When the analysis ran.")
    error_rate: float | None = Field(default=None, description="Observed 5xx share (0-1).")
    latency_p95_ms: float | None = Field(default=None, description="Observed p95, milliseconds.")
    requests: int | None = Field(default=None, description="Requests served in the window.")
    passed: bool | None = Field(default=None, description="Whether all gates passed.")


class ShadowResult(StatusModel):
    """How the shadow revision compares with the stable one."""

    agreement_rate: float | None = Field(
        default=None, description="Share of mirrored requests with the same prediction (0-1)."
    )
    latency_delta_ms: float | None = Field(
        default=None, description="Shadow p95 minus stable p95, milliseconds."
    )
    requests: int | None = Field(
        default=None, ge=0, description="Mirrored requests the figures are computed from."
    )


class MissedDeadline(StatusModel):
    """A revision rolled back for not having its replicas ready within progressDeadline."""

    revision: str | None = Field(default=None, description="The revision rolled back.")
    ready_replicas: int | None = Field(
        default=None, ge=0, description="Its ready replicas at the deadline."
    )
    replicas: int | None = Field(default=None, ge=0, description="The replicas it needed.")
    deadline: str | None = Field(default=None, description="spec.progressDeadline then.")


class LoadFailure(StatusModel):
    """A revision whose serving pods reported that they cannot load its model."""

    revision: str | None = Field(default=None, description="The revision.")
    message: str | None = Field(
        default=None,
        max_length=4096,
        description="What the pod said (its container's termination message).",
    )


class ModelDeploymentStatus(StatusBase):
    """Observed state of a ModelDeployment."""

    phase: DeploymentPhase | None = Field(default=None, description="Lifecycle phase.")
    stable_revision: str | None = Field(default=None, description="Revision serving most traffic.")
    canary_revision: str | None = Field(default=None, description="Revision being rolled out.")
    canary_weight: int | None = Field(
        default=None, ge=0, le=100, description="Percent of traffic on the canary revision."
    )
    canary_step: int | None = Field(default=None, ge=0, description="Index of the current step.")
    last_analysis: AnalysisResult | None = Field(default=None, description="Last canary analysis.")
    shadow: ShadowResult | None = Field(default=None, description="Shadow comparison figures.")
    ready_replicas: int | None = Field(default=None, ge=0, description="Ready serving replicas.")
    url: str | None = Field(default=None, description="In-cluster URL of the inference service.")
    stable_model_uri: str | None = Field(
        default=None,
        description="Model URI the stable revision serves, aliases resolved (models:/<name>/<n>).",
    )
    canary_model_uri: str | None = Field(
        default=None, description="Model URI of the revision being rolled out, aliases resolved."
    )
    step_started_at: datetime | None = Field(
        default=None,
        description="When the rollout's current step began taking traffic (canary or shadow).",
    )
    failed_checks: int | None = Field(
        default=None, ge=0, description="Failed canary analyses of the current rollout."
    )
    previous_revision: str | None = Field(
        default=None,
        description="Blue/green: the revision switched away from, kept for instant rollback.",
    )
    previous_model_uri: str | None = Field(
        default=None, description="Model URI of the previous revision."
    )
    scale_down_at: datetime | None = Field(
        default=None, description="When the previous revision is removed (scaleDownDelay)."
    )
    rolled_back_revision: str | None = Field(
        default=None,
        description="Revision that failed its rollout; not retried until the model changes.",
    )
    progress_started_at: datetime | None = Field(
        default=None,
        description=(
            "When the revision being rolled out (or, with none, the first revision) began"
            " waiting for the replicas it needs; removed once they are ready."
            " spec.progressDeadline counts from here."
        ),
    )
    missed_deadline: MissedDeadline | None = Field(
        default=None,
        description="Set when rolledBackRevision was rolled back for missing progressDeadline.",
    )
    load_failure: LoadFailure | None = Field(
        default=None,
        description=(
            "Set when rolledBackRevision was rolled back because its pods cannot load the"
            " model, or while the first revision's pods cannot."
        ),
    )


class ModelDeployment(Resource):
    """Serves an MLflow model behind a Service with autoscaling and a rollout strategy."""

    INFO = KindInfo(
        kind="ModelDeployment",
        plural="modeldeployments",
        singular="modeldeployment",
        short_names=["md"],
        description=(
            "ModelDeployment serves an MLflow model behind a Service with autoscaling and a"
            " Rolling, BlueGreen, Canary or Shadow rollout strategy."
        ),
        columns=[
            phase_column(),
            ready_column(),
            PrinterColumn(
                name="Model", type="string", json_path=".spec.model.uri", description="Model URI."
            ),
            PrinterColumn(
                name="Strategy",
                type="string",
                json_path=".spec.strategy.type",
                description="Rollout strategy.",
            ),
            PrinterColumn(
                name="Revision",
                type="string",
                json_path=".status.stableRevision",
                description="Revision serving most traffic.",
            ),
            PrinterColumn(
                name="Replicas",
                type="integer",
                json_path=".status.readyReplicas",
                description="Ready replicas.",
            ),
            PrinterColumn(
                name="Candidate",
                type="string",
                json_path=".status.canaryRevision",
                description="Revision being rolled out.",
                priority=1,
            ),
            PrinterColumn(
                name="Canary",
                type="integer",
                json_path=".status.canaryWeight",
                description="Percent of traffic on the canary.",
                priority=1,
            ),
            reason_column(),
            age_column(),
        ],
    )

    spec: ModelDeploymentSpec = Field(description="Desired state.")
    status: ModelDeploymentStatus = Field(
        default_factory=ModelDeploymentStatus, description="Observed state."
    )
