"""What the ModelDeployment handler gathers for `decide`, and what it asks Prometheus first.

`Inputs` is the whole of one decision's world: the parsed spec and status, the model URI
with any alias resolved, each revision's Deployment as observed, the figures Prometheus gave,
an approval and the time. `canary_query` and `shadow_query` tell the handler which revision's
figures to read, over which window, before it calls `decide`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from maestro.operators.api.common import Reason
from maestro.operators.api.modeldeployment import (
    CanaryStrategy,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    StrategyType,
)
from maestro.operators.modeldeployment.decide.names import parse_duration

# Annotation on the ModelDeployment approving a blue/green switch to the named revision.
PROMOTE_ANNOTATION = "mlops.maestro.dev/promote"
# Window of the shadow figures (agreement, latency delta) asked of Prometheus.
SHADOW_WINDOW = "5m"


@dataclass(frozen=True)
class RevisionFacts:
    """One revision's Deployment as observed."""

    replicas: int  # pods it wants now (spec.replicas, as the HPA set it)
    ready_replicas: int  # ready pods of its current pod template


# A revision without a Deployment yet.
NO_FACTS = RevisionFacts(0, 0)


def revision_facts(deployment: Mapping[str, Any]) -> RevisionFacts:
    """Read a Deployment as the API returns it. Ready pods of an older pod template do not
    count: after a template change they are not the revision the plan asked for."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    return RevisionFacts(
        replicas=int(spec.get("replicas", 1) or 0), ready_replicas=min(ready, updated)
    )


def load_failure(pod: Mapping[str, Any]) -> str | None:
    """Why a serving pod cannot load its model, if it said so: a container that is not ready
    and whose last run ended with a non-zero exit code and a termination message (the model
    server writes why it failed there)."""
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        if container.get("ready"):
            continue
        for state in (container.get("state"), container.get("lastState")):
            ended = (state or {}).get("terminated") or {}
            message = str(ended.get("message") or "").strip()
            if ended.get("exitCode") not in (None, 0) and message:
                return message[:2048]
    return None


class CanaryFigures(Protocol):
    """One revision's figures over the analysis window; None is "no data"
    (maestro.operators.core.prometheus.RevisionMetrics fits)."""

    @property
    def error_rate(self) -> float | None: ...
    @property
    def latency_p95_ms(self) -> float | None: ...
    @property
    def requests(self) -> float | None: ...


class ShadowFigures(Protocol):
    """Shadow comparison figures over SHADOW_WINDOW (analysis.ShadowMetrics fits)."""

    @property
    def agreement_rate(self) -> float | None: ...
    @property
    def latency_delta_p95_ms(self) -> float | None: ...
    @property
    def requests(self) -> float | None: ...


@dataclass(frozen=True)
class Inputs:
    """Everything one decision needs; the handler is the only place that fills it."""

    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus
    # spec.model.uri with any alias resolved (concrete_uri); None: it could not be resolved.
    model_uri: str | None
    now: datetime
    revisions: Mapping[str, RevisionFacts] = field(default_factory=dict)
    # Figures of canary_query's revision and window, when it asked for them.
    analysis: CanaryFigures | None = None
    # Why the figures asked for could not be read (Prometheus down), and when they are asked
    # for again: a rollout holds on missing figures, never rolls back for them.
    analysis_error: str = ""
    analysis_retry_at: datetime | None = None
    # Figures of shadow_query's revision, when it asked for them.
    shadow: ShadowFigures | None = None
    # The revision the PROMOTE_ANNOTATION approves, if any.
    approved_revision: str | None = None
    # Why model_uri is None (the registry's answer), for the condition message.
    model_error: str = ""
    # What kind of problem model_error is: ModelNotFound, or ModelNotServable.
    model_reason: Reason = Reason.MODEL_NOT_FOUND
    # Revisions whose serving pods say they cannot load the model: revision -> their message.
    load_failures: Mapping[str, str] = field(default_factory=dict)

    def observed(self, name: str | None) -> RevisionFacts:
        """What revision `name`'s Deployment reports; nothing yet if it has none."""
        return self.revisions.get(name or "", NO_FACTS)


@dataclass(frozen=True)
class MetricsQuery:
    """Which revision's metrics to read from Prometheus, over which PromQL range."""

    revision: str
    window: str


def canary_settings(spec: ModelDeploymentSpec) -> CanaryStrategy:
    return spec.strategy.canary or CanaryStrategy()


def next_analysis(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> datetime | None:
    """When the running canary step is next analysed (None: no canary step is running)."""
    if (
        spec.strategy.type != StrategyType.CANARY
        or not status.canary_revision
        or status.canary_step is None
        or status.step_started_at is None
    ):
        return None
    since = status.step_started_at
    last = status.last_analysis.time if status.last_analysis else None
    if last is not None and last > since:
        since = last
    return since + parse_duration(canary_settings(spec).analysis.interval)


def canary_query(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime
) -> MetricsQuery | None:
    """The canary revision to analyse now (window: analysis.interval), or None if not due."""
    due = next_analysis(spec, status)
    if due is None or now < due or status.canary_revision is None:
        return None
    return MetricsQuery(status.canary_revision, canary_settings(spec).analysis.interval)


def shadow_query(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> MetricsQuery | None:
    """The shadow revision whose comparison figures to read, or None."""
    if spec.strategy.type != StrategyType.SHADOW or status.canary_revision is None:
        return None
    return MetricsQuery(status.canary_revision, SHADOW_WINDOW)
