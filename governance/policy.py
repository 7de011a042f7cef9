"""The promotion policy: which gates a candidate passes before it becomes champion, with
what thresholds, on what held-out data, and what an approval needs. A versioned file
(YAML), not code: a change to it is reviewed like any change, and every approval records
the version and digest of the policy it was judged by."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

# Metrics the gates compute from predictions; for these lower is better.
CLASSIFICATION_METRICS = ("accuracy", "f1")
REGRESSION_METRICS = ("rmse", "mae", "r2")
LOWER_IS_BETTER = frozenset({"rmse", "mae"})
METRICS = (*CLASSIFICATION_METRICS, *REGRESSION_METRICS)
MetricName = Literal["accuracy", "f1", "rmse", "mae", "r2"]


class PolicyError(ValueError):
    """The policy file is missing, does not parse or is invalid (bad input: exit code 2)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Dataset(_Strict):
    """Held-out data both models are evaluated on (never the candidate's training data)."""

    uri: str = Field(description="sklearn://NAME, file:///PATH(.parquet|.csv), a path or s3://")
    target: str = Field(default="target", description="The label column.")
    holdout: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description=(
            "Evaluate on this fraction of the data only, split as `maestro train` splits"
            " (stratified, seeded): for a dataset the models were trained on the rest of."
        ),
    )
    seed: int = Field(default=0, description="Seed of that split (the TrainingRun's).")


class MetricGate(_Strict):
    """The candidate's metric against the current champion's, both measured on the data."""

    type: Literal["metric"]
    metric: MetricName
    min_delta: float = Field(
        default=0.0,
        alias="minDelta",
        description="How much better than the champion the candidate must be (metric units).",
    )


class LatencyGate(_Strict):
    """p95 of single predictions of the loaded candidate, timed here."""

    type: Literal["latency"]
    p95_ms: float = Field(alias="p95Ms", gt=0)
    requests: int = Field(default=200, ge=20, le=100_000)
    batch_size: int = Field(default=1, alias="batchSize", ge=1)


class FairnessGate(_Strict):
    """The largest gap of a metric between the groups of a sensitive column."""

    type: Literal["fairness"]
    column: str
    metric: MetricName = "accuracy"
    max_gap: float = Field(alias="maxGap", ge=0)
    min_group_size: int = Field(default=10, alias="minGroupSize", ge=1)


class SignatureGate(_Strict):
    """The candidate accepts what callers of the champion send: no input removed or retyped,
    no new required input."""

    type: Literal["signature"]


Gate = Annotated[
    MetricGate | LatencyGate | FairnessGate | SignatureGate, Field(discriminator="type")
]


class Approval(_Strict):
    distinct_approver: bool = Field(
        default=False,
        alias="distinctApprover",
        description="The approver may not be who created the model version (its MLflow user).",
    )


class PolicySpec(_Strict):
    dataset: Dataset | None = None
    gates: list[Gate] = Field(min_length=1)
    approval: Approval = Approval()


class PolicyMeta(_Strict):
    name: str = Field(min_length=1)
    version: str = Field(min_length=1, description="Recorded with every approval.")


class Policy(_Strict):
    api_version: Literal["mlops.maestro.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["PromotionPolicy"]
    metadata: PolicyMeta
    spec: PolicySpec

    def needs_data(self) -> bool:
        return any(not isinstance(g, SignatureGate) for g in self.spec.gates)


class GateType(StrEnum):
    METRIC = "metric"
    LATENCY = "latency"
    FAIRNESS = "fairness"
    SIGNATURE = "signature"


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    path: str
    digest: str  # sha256 of the file's bytes: which exact text judged a promotion

    @property
    def reference(self) -> dict[str, str]:
        meta = self.policy.metadata
        return {"name": meta.name, "version": meta.version, "sha256": self.digest}


def parse_policy(text: bytes, path: str) -> LoadedPolicy:
    """Parse a policy file's bytes; any problem is a PolicyError naming the field."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise PolicyError(f"policy {path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise PolicyError(f"policy {path} must be a mapping (apiVersion, kind, metadata, spec)")
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise PolicyError(f"policy {path} is invalid: {problems}") from None
    if policy.needs_data() and policy.spec.dataset is None:
        raise PolicyError(
            f"policy {path} is invalid: spec.dataset is required by the metric, latency and"
            " fairness gates"
        )
    return LoadedPolicy(policy, path, hashlib.sha256(text).hexdigest())


def load_policy(path: Path) -> LoadedPolicy:
    try:
        text = path.read_bytes()
    except OSError as err:
        raise PolicyError(f"cannot read policy {path}: {err.strerror or err}") from None
    return parse_policy(text, str(path))
