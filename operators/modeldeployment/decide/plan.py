"""What a ModelDeployment decision produces: the revision plan the renderer turns into
objects, the Events to emit, and the `Decision` that carries them with the status to write."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from maestro.operators.api.common import Reason
from maestro.operators.core.verdict import Verdict
from maestro.operators.modeldeployment.decide.names import registry_version

# Event types.
NORMAL, WARNING = "Normal", "Warning"


class Role(StrEnum):
    """What a revision is in the plan (shown as a label on its Deployment and Service)."""

    STABLE = "stable"
    CANARY = "canary"
    PREVIEW = "preview"  # Rolling and BlueGreen candidates, before the switch
    SHADOW = "shadow"
    PREVIOUS = "previous"  # BlueGreen: switched away from, kept for rollback
    CHALLENGER = "challenger"  # an ABTest's challenger, beside the stable revision


@dataclass(frozen=True)
class Revision:
    """One Deployment of the plan."""

    name: str
    model_uri: str
    role: Role
    # The floor: HPA minReplicas, or the Deployment's replicas without autoscaling.
    replicas: int
    max_replicas: int
    # Shadow revisions: the candidate, run as the server's shadow model.
    shadow_model_uri: str | None = None

    @property
    def model_version(self) -> str:
        return registry_version(self.model_uri) or ""


@dataclass(frozen=True)
class Mirror:
    """Mirror `percent` of the live traffic to `revision`; its answers are discarded."""

    revision: str
    percent: int


@dataclass(frozen=True)
class RevisionPlan:
    """The revisions to run and how live traffic is split between them."""

    revisions: tuple[Revision, ...] = ()
    # Percent of live traffic per revision; only revisions with traffic, summing to 100.
    weights: Mapping[str, int] = field(default_factory=dict)
    mirror: Mirror | None = None

    def names(self) -> list[str]:
        return [r.name for r in self.revisions]

    def get(self, name: str) -> Revision | None:
        return next((r for r in self.revisions if r.name == name), None)


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to emit on the ModelDeployment."""

    type: str
    reason: Reason
    message: str


@dataclass(frozen=True)
class Decision:
    plan: RevisionPlan
    verdict: Verdict
    # Status fields besides phase and conditions (wire names; None removes the field), as
    # reconcile.plan_status takes them. `url` is the handler's (render.service_url).
    status: dict[str, Any]
    events: tuple[Event, ...] = ()
    # Seconds until something time-based happens (analysis, step end, scale-down) or until
    # readiness is polled again; None: nothing to wait for.
    requeue_after: float | None = None
