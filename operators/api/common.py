"""Building blocks shared by every Maestro custom resource.

The models here are the single source of the CRD schemas: `crdgen` turns them into
structural OpenAPI v3 schemas, so every constraint written here is enforced by the
API server before an operator ever sees the object.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

GROUP = "mlops.maestro.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "maestro"

# Kubernetes object names (RFC 1123 subdomain); a CRD object name is at most 253 characters.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
MODEL_URI_PATTERN = r"^(models:/|runs:/|s3://|gs://|file://|mlflow-artifacts:/)\S+$"
# Go-style durations restricted to whole units, plus days (e.g. 30m, 1h30m, 72h, 7d).
DURATION_PATTERN = r"^([0-9]+(s|m|h|d))+$"
# The same, but not zero: one part has a non-zero number (10m, 1h30m, 0h45s; not 0s or 0m0s).
# No lookahead: the API server checks patterns with Go's RE2.
POSITIVE_DURATION_PATTERN = r"^([0-9]+(s|m|h|d))*0*[1-9][0-9]*(s|m|h|d)([0-9]+(s|m|h|d))*$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
# The same pattern Kubernetes publishes for resource.Quantity.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)


class SpecModel(BaseModel):
    """Base for user-written parts: camelCase on the wire, typos are errors."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
    )


class StatusModel(BaseModel):
    """Base for operator-written parts: lenient so an older status never breaks parsing."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


ObjectName = Annotated[
    str,
    Field(min_length=1, max_length=253, pattern=NAME_PATTERN),
]
ModelUri = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        pattern=MODEL_URI_PATTERN,
        description=(
            "Model location: models:/<name>/<version>, models:/<name>@<alias>, runs:/<run>/<path>,"
            " s3://, gs://, file:// or mlflow-artifacts:/ URI."
        ),
    ),
]
Duration = Annotated[str, Field(max_length=32, pattern=DURATION_PATTERN)]
PositiveDuration = Annotated[str, Field(max_length=32, pattern=POSITIVE_DURATION_PATTERN)]

# A Kubernetes resource.Quantity: int-or-string is the one union structural schemas allow.
Quantity = Annotated[
    int | str,
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]

Scalar = str | int | float | bool
# Free-form scalars (hyper-parameters). A union of types is not structural, so the value is
# kept as-is; CEL cannot type-check such values either, so the operator reports a list or
# map here as Ready=False InvalidSpec.
ScalarValue = Annotated[Scalar, WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True})]
# The one typed union structural schemas and CEL both understand.
IntOrString = Annotated[
    int | str,
    WithJsonSchema(
        {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}
    ),
]


class ConditionStatus(StrEnum):
    """Status of a condition, as Kubernetes defines it."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(StrEnum):
    """Condition types shared by every kind."""

    READY = "Ready"
    # False while reconciles fail (a dependency down): what runs is Ready's to say, why the
    # operator cannot act on the object now is this one's. Back to True on the next success.
    SYNCED = "Synced"


class Reason(StrEnum):
    """The reasons vocabulary shared by every kind's conditions and Events."""

    ACCEPTED = "Accepted"
    # The Synced condition.
    RECONCILED = "Reconciled"
    RECONCILE_ERROR = "ReconcileError"
    REGISTRY_UNAVAILABLE = "RegistryUnavailable"
    API_SERVER_UNAVAILABLE = "APIServerUnavailable"
    INVALID_SPEC = "InvalidSpec"
    DEPLOYMENT_NOT_FOUND = "DeploymentNotFound"
    TRAINING_RUN_NOT_FOUND = "TrainingRunNotFound"
    CHALLENGER_SAME_AS_CHAMPION = "ChallengerSameAsChampion"
    # TrainingRun lifecycle.
    NOT_CONFIGURED = "OperatorNotConfigured"
    ALIAS_NOT_ALLOWED = "AliasNotAllowed"
    QUEUED = "Queued"
    STARTING = "Starting"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    JOB_FAILED = "JobFailed"
    TRIAL_BUDGET_SPENT = "TrialBudgetSpent"
    REGISTRATION_FAILED = "RegistrationFailed"
    TRACKING_UNAVAILABLE = "TrackingUnavailable"
    # ModelDeployment rollouts (conditions and Events).
    MODEL_NOT_FOUND = "ModelNotFound"
    MODEL_LOAD_FAILED = "ModelLoadFailed"
    MODEL_NOT_SERVABLE = "ModelNotServable"
    # An alias moved to a version no `maestro model promote` approved (requireApproval).
    AWAITING_APPROVAL = "AwaitingApproval"
    # spec.secrets: why the pods could not get their Vault secrets.
    SECRET_PATH_NOT_ALLOWED = "SecretPathNotAllowed"
    SECRET_NOT_FOUND = "SecretNotFound"
    VAULT_NOT_CONFIGURED = "VaultNotConfigured"
    VAULT_UNAVAILABLE = "VaultUnavailable"
    VAULT_DENIED = "VaultDenied"
    VAULT_ERROR = "VaultError"
    DEPLOYING = "Deploying"
    AVAILABLE = "Available"
    REPLICAS_UNAVAILABLE = "ReplicasUnavailable"
    AWAITING_PROMOTION = "AwaitingPromotion"
    CANARY_PROGRESSING = "CanaryProgressing"
    SHADOWING = "Shadowing"
    ANALYSIS_FAILED = "AnalysisFailed"
    PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
    ROLLOUT_STARTED = "RolloutStarted"
    ROLLOUT_ABORTED = "RolloutAborted"
    STEP_ADVANCED = "StepAdvanced"
    CHECK_FAILED = "AnalysisCheckFailed"
    PROMOTED = "Promoted"
    ROLLED_BACK = "RolledBack"
    SCALED_DOWN = "PreviousRevisionRemoved"
    # ABTest lifecycle.
    ANOTHER_TEST_RUNNING = "AnotherTestRunning"
    ROLLOUT_IN_PROGRESS = "RolloutInProgress"
    CONCLUDED = "Concluded"
    CHALLENGER_WINS = "ChallengerWins"
    CHAMPION_KEPT = "ChampionKept"
    INCONCLUSIVE = "Inconclusive"
    GUARDRAIL_BREACHED = "GuardrailBreached"
    SAMPLE_RATIO_MISMATCH = "SampleRatioMismatch"
    PROMOTION_FAILED = "PromotionFailed"
    # DriftCheck: the schedule, each run's outcome (the job's own reasons for bad input,
    # monitoring.contract) and retraining.
    OBJECT_STORE_NOT_CONFIGURED = "ObjectStoreNotConfigured"
    REFERENCE_MISSING = "ReferenceMissing"
    SCHEDULE_REJECTED = "ScheduleRejected"
    SCHEDULED = "Scheduled"
    SUSPENDED = "Suspended"
    NO_DRIFT = "NoDrift"
    DRIFT_DETECTED = "DriftDetected"
    REFERENCE_UNREADABLE = "ReferenceUnreadable"
    CURRENT_UNREADABLE = "CurrentUnreadable"
    COLUMN_MISSING = "ColumnMissing"
    EMPTY_DATA = "EmptyData"
    ALL_NULL_COLUMN = "AllNullColumn"
    UNSUPPORTED_FORMAT = "UnsupportedFormat"
    CHECK_RUN_FAILED = "CheckRunFailed"
    RETRAIN_STARTED = "RetrainStarted"
    RETRAIN_SKIPPED = "RetrainSkipped"


class Condition(StatusModel):
    """One aspect of the object's state (metav1.Condition)."""

    type: str = Field(
        min_length=1,
        max_length=316,
        description="Type of condition in CamelCase, e.g. Ready.",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Machine-readable CamelCase reason for the last transition.",
    )
    message: str = Field(
        default="",
        max_length=32768,
        description="Human-readable explanation, including what to do when it is not True.",
    )
    last_transition_time: datetime = Field(
        description="Last time the condition changed from one status to another.",
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="metadata.generation of the object the condition was computed from.",
    )


Conditions = Annotated[
    list[Condition],
    Field(
        max_length=16,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    ),
]


class StatusBase(StatusModel):
    """Fields every kind's status carries (phase is added per kind as its own enum)."""

    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="metadata.generation last processed by the operator.",
    )
    conditions: Conditions = Field(
        default_factory=list,
        description="Current state as Kubernetes conditions; Ready summarises the object.",
    )


class ObjectReference(StatusModel):
    """Reference to an object the operator created or uses."""

    api_version: str = Field(description="API version of the referenced object, e.g. batch/v1.")
    kind: str = Field(description="Kind of the referenced object, e.g. Job.")
    name: str = Field(description="Name of the referenced object.")
    namespace: str | None = Field(
        default=None, description="Namespace of the referenced object; empty means the same one."
    )


class ResourceRequirements(SpecModel):
    """Compute resources, as in a container's resources (cpu, memory, nvidia.com/gpu, ...)."""

    requests: dict[str, Quantity] | None = Field(
        default=None,
        max_length=16,
        description="Minimum resources the scheduler reserves, e.g. {cpu: 500m, memory: 1Gi}.",
    )
    limits: dict[str, Quantity] | None = Field(
        default=None,
        max_length=16,
        description="Maximum resources the container may use, e.g. {memory: 2Gi}.",
    )


class ObjectMeta(BaseModel):
    """The parts of metadata the operators read; everything else is kept as-is."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str = Field(description="Object name.")
    namespace: str | None = Field(default=None, description="Object namespace.")
    generation: int | None = Field(default=None, description="Spec generation.")
    uid: str | None = Field(default=None, description="Object UID.")


class PrinterColumn(BaseModel):
    """One `kubectl get` column (additionalPrinterColumns entry)."""

    name: str
    type: str
    json_path: str
    description: str
    format: str | None = None
    priority: int = 0


class KindInfo(BaseModel):
    """Everything besides the schema that a CRD needs."""

    kind: str
    plural: str
    singular: str
    short_names: list[str]
    columns: list[PrinterColumn]
    description: str


def ready_column() -> PrinterColumn:
    return PrinterColumn(
        name="Ready",
        type="string",
        json_path='.status.conditions[?(@.type=="Ready")].status',
        description="Whether the object does what its spec asks; the Reason column says why not.",
    )


def phase_column() -> PrinterColumn:
    return PrinterColumn(
        name="Phase", type="string", json_path=".status.phase", description="Lifecycle phase."
    )


def reason_column(priority: int = 1) -> PrinterColumn:
    """Priority 1 shows it with `-o wide` only; 0 always."""
    return PrinterColumn(
        name="Reason",
        type="string",
        json_path='.status.conditions[?(@.type=="Ready")].reason',
        description="Reason of the Ready condition.",
        priority=priority,
    )


def age_column() -> PrinterColumn:
    return PrinterColumn(
        name="Age",
        type="date",
        json_path=".metadata.creationTimestamp",
        description="Time since creation.",
    )


class Resource(BaseModel):
    """A whole custom resource object as the API server returns it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    INFO: ClassVar[KindInfo]

    api_version: str = Field(default=API_VERSION, description="Always mlops.maestro.dev/v1alpha1.")
    kind: str = Field(description="Kind of the object.")
    metadata: ObjectMeta = Field(description="Standard object metadata.")
