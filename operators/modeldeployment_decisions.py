"""ModelDeployment rollouts as pure decisions: no kopf, no kubernetes, no I/O.

The handler gathers one `Inputs` (the parsed spec and status, spec.model.uri with any alias
resolved to a concrete version, what each revision's Deployment reports, the canary or shadow
figures Prometheus gave, an approval, the time), calls `decide`, renders `Decision.plan`
(maestro.operators.modeldeployment_render), applies it, prunes revisions the plan no longer
names, writes `Decision.status` through `reconcile.plan_status(extra=...)` with
`Decision.verdict`, emits `Decision.events`, and comes back after `Decision.requeue_after`
seconds. `canary_query` / `shadow_query` say which revision to ask Prometheus about, and over
which window, before calling `decide`.

The first revision is deployed directly, whatever the strategy. A revision is one model URI
served by its own Deployment; it is named `v<version>` for
registry versions, else by the first 8 hex digits of the URI's sha256. The stable revision
serves; a candidate (status.canaryRevision) is rolled out beside it by the strategy:

- Rolling: the candidate comes up at the stable's size; traffic switches to it once all its
  replicas are ready and the old revision is removed (zero downtime, no gradual shift).
- BlueGreen: the same, but the switch waits for approval unless autoPromote (the
  `mlops.maestro.dev/promote: <revision>` annotation, read by the handler), and the old
  revision is kept, at its size, until scaleDownDelay has passed: pointing the model back at
  it within that time switches back at once.
- Canary: the candidate gets each step's weight once it has the replicas for it, holds it
  for stepDuration, and moves on when the latest analysis of the step passed. An analysis
  runs every interval; it is judged once the canary served minRequests in the window and
  fails when the error rate or the p95 latency is over its limit. maxFailedChecks failures
  roll back: the candidate is removed, phase RolledBack, and the same revision is not tried
  again until spec.model.uri resolves to another one. After the last step the candidate is
  scaled to the stable's size, then promoted.
- Shadow: the candidate's pods run the stable model as their primary and the candidate as
  the server's shadow model (`--shadow-model-uri`), so they report agreement and latency
  delta; Istio mirrors `percent` of the live traffic to them and discards their answers. The
  stable keeps serving; changing the strategy type rolls the candidate out for real.

Rollouts respect autoscaling: while a candidate is rolled out the stable revision's floor
(HPA minReplicas) is its current replica count, so it can take all traffic back at once and
is never scaled down; a canary's replicas follow its weight, ceil(stable * weight / 100).

Progress deadline (spec.progressDeadline, default 10m), as a Deployment's
progressDeadlineSeconds one level up: a revision waiting for the replicas it needs must have
them ready within it. A wait starts when a candidate's rollout starts (or the first revision
is created) and again whenever the candidate must come up once more: a canary scaling for its
next step or to the stable's size, a shadow whose pods lost readiness. status.progressStartedAt
records it and goes once the replicas are ready; held steps, analyses and a blue/green preview
awaiting approval do not count. A candidate that misses it is rolled back as a failed analysis
is: removed, phase RolledBack, Ready=False ProgressDeadlineExceeded naming its ready replicas
(kept in status.missedDeadline), a Warning Event, and not retried until spec.model.uri
resolves to another revision. A first revision has nothing to fall back to: its Deployment is
kept, since it may still come up, and the phase is Failed (nothing serves the model) rather
than Degraded (a revision that served has lost replicas), with Ready=False
ProgressDeadlineExceeded, whose transition is the Warning Event; once ready it is Available.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from maestro.operators.api.common import Reason
from maestro.operators.api.modeldeployment import (
    AnalysisResult,
    BlueGreenStrategy,
    CanaryAnalysis,
    CanaryStrategy,
    DeploymentPhase,
    MissedDeadline,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ShadowResult,
    ShadowStrategy,
    StrategyType,
)
from maestro.operators.decisions import Verdict

# Annotation on the ModelDeployment approving a blue/green switch to the named revision.
PROMOTE_ANNOTATION = "mlops.maestro.dev/promote"
# How soon to look again while waiting for replicas, should no Deployment event come first.
READINESS_POLL_SECONDS = 5.0
# Window of the shadow figures (agreement, latency delta) asked of Prometheus.
SHADOW_WINDOW = "5m"
NORMAL, WARNING = "Normal", "Warning"

_REGISTRY_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[0-9]+)$")
# models:/<name>@<alias>, models:/<name>/<version|stage|latest>
_REGISTRY_REF = re.compile(r"^models:/(?P<name>[^/@]+)(@[^/]+|/[^/]+)$")
_DURATION = re.compile(r"([0-9]+[smhd])+")
_DURATION_PART = re.compile(r"([0-9]+)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Longest revision name: it is appended to object names limited to 63 characters.
_MAX_REVISION = 15


# --- names and units --------------------------------------------------------------------


def registry_version(uri: str) -> str | None:
    """The version of a concrete registry URI (models:/iris/3 -> "3"), else None."""
    m = _REGISTRY_VERSION.match(uri)
    return m["version"] if m else None


def registry_model(uri: str) -> str | None:
    """The registered model a models:/ URI names, whatever its version, stage or alias."""
    m = _REGISTRY_REF.match(uri)
    return m["name"] if m else None


def needs_resolution(uri: str) -> bool:
    """Whether the handler must ask the registry which version `uri` means now."""
    return registry_model(uri) is not None and registry_version(uri) is None


def concrete_uri(spec_uri: str, version: str | int) -> str:
    """spec.model.uri with its alias, stage or `latest` pinned to the resolved version."""
    name = registry_model(spec_uri)
    if name is None:
        raise ValueError(f"{spec_uri!r} is not a models:/ registry URI")
    return f"models:/{name}/{version}"


def revision_name(uri: str, taken: Mapping[str, str] | None = None) -> str:
    """`v<version>` for a registry version, else the first 8 hex digits of sha256(uri).

    `taken` maps the revisions that exist to their URIs: a version number already used by
    another model (spec.model.uri moved from iris/3 to wine/3) gets the hash name instead.
    """
    version = registry_version(uri)
    name = f"v{version}" if version is not None else None
    if name is None or len(name) > _MAX_REVISION or (taken or {}).get(name, uri) != uri:
        name = hashlib.sha256(uri.encode()).hexdigest()[:8]
    return name


def parse_duration(text: str) -> timedelta:
    """A spec duration (whole units: 30s, 5m, 1h30m, 7d) as a timedelta."""
    if not _DURATION.fullmatch(text):
        raise ValueError(f"invalid duration {text!r}: use whole units such as 30s, 5m, 1h30m, 7d")
    return timedelta(
        seconds=sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    )


def share(replicas: int, percent: int) -> int:
    """Replicas for `percent` of the traffic `replicas` take: ceil, at least one."""
    return max(1, math.ceil(replicas * percent / 100))


# --- what the handler gathers -------------------------------------------------------------


@dataclass(frozen=True)
class RevisionFacts:
    """One revision's Deployment as observed."""

    replicas: int  # pods it wants now (spec.replicas, as the HPA set it)
    ready_replicas: int  # ready pods of its current pod template


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


class CanaryFigures(Protocol):
    """One revision's figures over the analysis window; None is "no data"
    (maestro.operators.analysis.RevisionMetrics fits)."""

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
    # Figures of shadow_query's revision, when it asked for them.
    shadow: ShadowFigures | None = None
    # The revision the PROMOTE_ANNOTATION approves, if any.
    approved_revision: str | None = None
    # Why model_uri is None (the registry's answer), for the condition message.
    model_error: str = ""


@dataclass(frozen=True)
class MetricsQuery:
    """Which revision's metrics to read from Prometheus, over which PromQL range."""

    revision: str
    window: str


def _canary_settings(spec: ModelDeploymentSpec) -> CanaryStrategy:
    return spec.strategy.canary or CanaryStrategy()


def _next_analysis(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> datetime | None:
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
    return since + parse_duration(_canary_settings(spec).analysis.interval)


def canary_query(
    spec: ModelDeploymentSpec, status: ModelDeploymentStatus, now: datetime
) -> MetricsQuery | None:
    """The canary revision to analyse now (window: analysis.interval), or None if not due."""
    due = _next_analysis(spec, status)
    if due is None or now < due or status.canary_revision is None:
        return None
    return MetricsQuery(status.canary_revision, _canary_settings(spec).analysis.interval)


def shadow_query(spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> MetricsQuery | None:
    """The shadow revision whose comparison figures to read, or None."""
    if spec.strategy.type != StrategyType.SHADOW or status.canary_revision is None:
        return None
    return MetricsQuery(status.canary_revision, SHADOW_WINDOW)


# --- what the decision produces ----------------------------------------------------------


class Role(StrEnum):
    """What a revision is in the plan (shown as a label on its Deployment and Service)."""

    STABLE = "stable"
    CANARY = "canary"
    PREVIEW = "preview"  # Rolling and BlueGreen candidates, before the switch
    SHADOW = "shadow"
    PREVIOUS = "previous"  # BlueGreen: switched away from, kept for rollback


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


# --- the decision ------------------------------------------------------------------------


# Status fields `decide` writes (wire names): all but the kind-independent ones and url.
_OWNED_STATUS = tuple(
    info.alias or name
    for name, info in ModelDeploymentStatus.model_fields.items()
    if name not in ("observed_generation", "conditions", "phase", "url")
)


@dataclass
class _State:
    """The status fields this module owns, as they will be written."""

    stable: str | None
    stable_uri: str | None
    canary: str | None
    canary_uri: str | None
    weight: int | None
    step: int | None
    step_started: datetime | None
    failed: int | None
    last_analysis: AnalysisResult | None
    shadow: ShadowResult | None
    previous: str | None
    previous_uri: str | None
    scale_down_at: datetime | None
    rolled_back: str | None
    progress_started: datetime | None
    missed: MissedDeadline | None

    @classmethod
    def of(cls, status: ModelDeploymentStatus) -> _State:
        return cls(
            stable=status.stable_revision,
            stable_uri=status.stable_model_uri,
            canary=status.canary_revision,
            canary_uri=status.canary_model_uri,
            weight=status.canary_weight,
            step=status.canary_step,
            step_started=status.step_started_at,
            failed=status.failed_checks,
            last_analysis=status.last_analysis,
            shadow=status.shadow,
            previous=status.previous_revision,
            previous_uri=status.previous_model_uri,
            scale_down_at=status.scale_down_at,
            rolled_back=status.rolled_back_revision,
            progress_started=status.progress_started_at,
            missed=status.missed_deadline,
        )

    def clear_candidate(self) -> None:
        if self.canary is not None:
            # The wait was the candidate's; without one it is the first revision's.
            self.progress_started = None
        self.canary = self.canary_uri = None
        self.weight = self.step = self.failed = None
        self.step_started = None
        self.shadow = None

    def status(self) -> ModelDeploymentStatus:
        return ModelDeploymentStatus(
            stable_revision=self.stable,
            stable_model_uri=self.stable_uri,
            canary_revision=self.canary,
            canary_model_uri=self.canary_uri,
            canary_weight=self.weight,
            canary_step=self.step,
            step_started_at=self.step_started,
            failed_checks=self.failed,
            last_analysis=self.last_analysis,
            shadow=self.shadow,
            previous_revision=self.previous,
            previous_model_uri=self.previous_uri,
            scale_down_at=self.scale_down_at,
            rolled_back_revision=self.rolled_back,
            progress_started_at=self.progress_started,
            # It explains rolledBackRevision, and goes when that does.
            missed_deadline=(
                self.missed
                if self.missed is not None and self.missed.revision == self.rolled_back
                else None
            ),
        )

    def wire(self, ready_replicas: int) -> dict[str, Any]:
        """The owned fields by wire name, JSON-ready; None for each one to remove."""
        status = self.status()
        status.ready_replicas = ready_replicas
        dumped = status.model_dump(by_alias=True, mode="json", exclude_none=True)
        return {key: dumped.get(key) for key in _OWNED_STATUS}


def _percent(value: float) -> str:
    return f"{value * 100:.2f}%"


def _figures(error_rate: float | None, p95_ms: float | None, requests: float | None) -> str:
    errors = "no data" if error_rate is None else _percent(error_rate)
    p95 = "no data" if p95_ms is None else f"{p95_ms:.0f} ms"
    served = "no data" if requests is None else f"{requests:.0f}"
    return f"error rate {errors}, p95 {p95}, requests {served}"


def _problems(analysis: CanaryAnalysis, error_rate: float | None, p95_ms: float | None) -> str:
    problems = []
    # No 5xx series at all is an error rate of zero, not a missing figure.
    if error_rate is not None and error_rate > analysis.max_error_rate:
        problems.append(f"error rate {_percent(error_rate)} > {_percent(analysis.max_error_rate)}")
    if p95_ms is not None and p95_ms > analysis.max_latency_p95_ms:
        problems.append(f"p95 {p95_ms:.0f} ms > {analysis.max_latency_p95_ms} ms")
    return " and ".join(problems)


def judge(analysis: CanaryAnalysis, figures: CanaryFigures) -> bool | None:
    """True: every gate passed; False: one failed; None: too few requests to judge."""
    if figures.requests is None or figures.requests < analysis.min_requests:
        return None
    return not _problems(analysis, figures.error_rate, figures.latency_p95_ms)


class _Rollout:
    """One run of `decide`: the inputs, the status being written, and what happened."""

    def __init__(self, inputs: Inputs) -> None:
        self.i = inputs
        self.spec = inputs.spec
        self.now = inputs.now
        self.st = _State.of(inputs.status)
        self.events: list[Event] = []
        self.wake: list[datetime] = []
        self.poll = False

    # --- facts ---------------------------------------------------------------------------

    def observed(self, name: str | None) -> RevisionFacts:
        return self.i.revisions.get(name or "", RevisionFacts(0, 0))

    def ready(self, name: str, needed: int) -> bool:
        if self.observed(name).ready_replicas >= needed:
            if name == self.st.canary:
                self.st.progress_started = None  # its wait is over; a later one starts afresh
            return True
        self.poll = True
        return False

    def past_deadline(self) -> bool:
        """Whether the running wait for replicas (status.progressStartedAt; one starts now if
        none runs) has lasted spec.progressDeadline. If not, wake up when it will have."""
        st = self.st
        if st.progress_started is None:
            st.progress_started = self.now
        deadline = st.progress_started + parse_duration(self.spec.progress_deadline)
        if self.now < deadline:
            self.wake.append(deadline)
            return False
        return True

    def ready_text(self, name: str, needed: int) -> str:
        return f"{self.observed(name).ready_replicas} of {needed} replicas ready"

    def event(self, type_: str, reason: Reason, message: str) -> None:
        self.events.append(Event(type_, reason, message))

    # --- replica counts ------------------------------------------------------------------

    def steady_floor(self) -> int:
        return self.spec.replicas.min

    def held_floor(self, name: str | None) -> int:
        """A revision that must be able to take all traffic at once: never below what it
        runs now (the HPA may have scaled it up), nor below replicas.min."""
        if not self.spec.autoscaling.enabled:
            return self.spec.replicas.min
        return max(self.spec.replicas.min, self.observed(name).replicas)

    def revision(
        self, name: str, uri: str, role: Role, replicas: int, shadow_uri: str | None = None
    ) -> Revision:
        return Revision(
            name=name,
            model_uri=uri,
            role=role,
            replicas=replicas,
            max_replicas=max(replicas, self.spec.replicas.max),
            shadow_model_uri=shadow_uri,
        )

    def stable_revision(self, held: bool) -> Revision:
        assert self.st.stable is not None and self.st.stable_uri is not None
        replicas = self.held_floor(self.st.stable) if held else self.steady_floor()
        return self.revision(self.st.stable, self.st.stable_uri, Role.STABLE, replicas)

    def previous_revision(self) -> list[Revision]:
        if self.st.previous is None or self.st.previous_uri is None:
            return []
        floor = self.held_floor(self.st.previous)
        return [self.revision(self.st.previous, self.st.previous_uri, Role.PREVIOUS, floor)]

    # --- outcome -------------------------------------------------------------------------

    def decision(
        self,
        revisions: Iterable[Revision],
        weights: Mapping[str, int],
        verdict: Verdict,
        mirror: Mirror | None = None,
    ) -> Decision:
        weights = {name: w for name, w in weights.items() if w > 0}
        plan = RevisionPlan(tuple(revisions), weights, mirror)
        status = self.st.wire(sum(self.observed(name).ready_replicas for name in weights))
        # A time already past (an analysis due but no figures given) is retried after a
        # pause rather than at once.
        seconds = [
            (t - self.now).total_seconds() if t > self.now else READINESS_POLL_SECONDS
            for t in self.wake
        ]
        if self.poll:
            seconds.append(READINESS_POLL_SECONDS)
        requeue = max(1.0, min(seconds)) if seconds else None
        return Decision(plan, verdict, status, tuple(self.events), requeue)

    def steady(self, verdict: Verdict | None = None) -> Decision:
        """Only the stable revision (and a kept previous one) runs."""
        stable = self.stable_revision(held=False)
        verdict = verdict or self.stable_verdict(stable)
        return self.decision([stable, *self.previous_revision()], {stable.name: 100}, verdict)

    def stable_verdict(self, stable: Revision) -> Verdict:
        ready = self.observed(stable.name).ready_replicas
        what = f"{stable.name} ({stable.model_uri})"
        kept = ""
        if self.st.previous and self.st.scale_down_at:
            kept = (
                f" {self.st.previous} is kept until {self.st.scale_down_at.isoformat()}"
                " for rollback."
            )
        if ready >= stable.replicas:
            if self.st.canary is None:
                self.st.progress_started = None
            return Verdict(
                ready=True,
                reason=Reason.AVAILABLE,
                message=f"Serving {what} with {ready} ready replicas.{kept}",
                phase=DeploymentPhase.AVAILABLE,
            )
        self.poll = True
        was_serving = self.i.status.phase in (
            DeploymentPhase.AVAILABLE,
            DeploymentPhase.DEGRADED,
            DeploymentPhase.ROLLED_BACK,
        )
        if was_serving:
            return Verdict(
                ready=False,
                reason=Reason.REPLICAS_UNAVAILABLE,
                message=(
                    f"{self.ready_text(stable.name, stable.replicas)} of {what}; see the"
                    " serving pods' events and logs."
                ),
                phase=DeploymentPhase.DEGRADED,
            )
        # Not serving before (no phase, Progressing, Failed): the first revision's wait.
        if self.past_deadline():
            since = self.st.progress_started
            assert since is not None
            return Verdict(
                ready=False,
                reason=Reason.PROGRESS_DEADLINE_EXCEEDED,
                message=(
                    f"{what} has {self.ready_text(stable.name, stable.replicas)} after"
                    f" progressDeadline {self.spec.progress_deadline} (waiting since"
                    f" {since.isoformat()}). Its Deployment is kept: Available once they are"
                    " ready. See the serving pods' events and logs."
                ),
                phase=DeploymentPhase.FAILED,
            )
        return Verdict(
            ready=None,
            reason=Reason.DEPLOYING,
            message=f"Starting {what}: {self.ready_text(stable.name, stable.replicas)}.",
            phase=DeploymentPhase.PROGRESSING,
        )

    def progressing(self, reason: Reason, message: str) -> Verdict:
        return Verdict(
            ready=None, reason=reason, message=message, phase=DeploymentPhase.PROGRESSING
        )

    # --- cases ---------------------------------------------------------------------------

    def expire_previous(self) -> None:
        st = self.st
        if st.previous is None:
            return
        if st.scale_down_at is not None and self.now < st.scale_down_at:
            self.wake.append(st.scale_down_at)
            return
        self.event(
            NORMAL,
            Reason.SCALED_DOWN,
            f"Removed {st.previous}: scaleDownDelay passed since the switch.",
        )
        st.previous = st.previous_uri = None
        st.scale_down_at = None

    def abort_candidate(self, why: str) -> None:
        if self.st.canary is not None:
            self.event(NORMAL, Reason.ROLLOUT_ABORTED, f"Removed {self.st.canary}: {why}.")
        self.st.clear_candidate()

    def model_missing(self) -> Decision:
        problem = (
            f"spec.model.uri {self.spec.model.uri} cannot be resolved:"
            f" {self.i.model_error or 'no such model version or alias in the registry'}."
        )
        if self.st.stable is None or self.st.stable_uri is None:
            return self.decision(
                [],
                {},
                Verdict(
                    ready=False,
                    reason=Reason.MODEL_NOT_FOUND,
                    message=f"{problem} Register the model or fix spec.model.uri.",
                    phase=DeploymentPhase.PENDING,
                ),
            )
        self.abort_candidate("spec.model.uri cannot be resolved")
        return self.steady(
            Verdict(
                ready=False,
                reason=Reason.MODEL_NOT_FOUND,
                message=f"{problem} {self.st.stable} keeps serving.",
                phase=DeploymentPhase.DEGRADED,
            )
        )

    def first(self, name: str, uri: str) -> Decision:
        st = self.st
        st.clear_candidate()
        st.stable, st.stable_uri = name, uri
        st.previous = st.previous_uri = st.rolled_back = None
        st.scale_down_at = None
        st.last_analysis = None
        st.progress_started = self.now
        return self.steady()

    def switch_back(self) -> Decision | None:
        """The model points at the kept previous revision again: switch to it at once."""
        st = self.st
        assert st.previous is not None and st.previous_uri is not None
        previous = self.previous_revision()[0]
        if not self.ready(previous.name, previous.replicas):
            # Not able to take the traffic: roll it out again like any other revision.
            st.previous = st.previous_uri = None
            st.scale_down_at = None
            return None
        self.abort_candidate(f"spec.model.uri points at {previous.name} again")
        return self.promote(previous.name, previous.model_uri, keep_old=True)

    def promote(self, name: str, uri: str, keep_old: bool) -> Decision:
        st = self.st
        old, old_uri = st.stable, st.stable_uri
        st.clear_candidate()
        st.stable, st.stable_uri = name, uri
        delay = parse_duration(
            (self.spec.strategy.blue_green or BlueGreenStrategy()).scale_down_delay
        )
        if keep_old and delay > timedelta(0) and old is not None:
            if st.previous not in (None, name):
                self.event(
                    NORMAL, Reason.SCALED_DOWN, f"Removed {st.previous}: {old} is kept instead."
                )
            st.previous, st.previous_uri = old, old_uri
            st.scale_down_at = self.now + delay
            self.wake.append(st.scale_down_at)
        elif st.previous == name:
            st.previous = st.previous_uri = None
            st.scale_down_at = None
        self.event(NORMAL, Reason.PROMOTED, f"{name} ({uri}) now serves all traffic.")
        # The new stable is already at the old one's size; from here the HPA sizes it.
        return self.steady()

    def rolled_back_verdict(self) -> Verdict:
        missed = self.st.missed
        if missed is not None and missed.revision == self.st.rolled_back:
            return Verdict(
                ready=False,
                reason=Reason.PROGRESS_DEADLINE_EXCEEDED,
                message=(
                    f"Rolled back {missed.revision}: {missed.ready_replicas} of"
                    f" {missed.replicas} replicas ready after progressDeadline"
                    f" {missed.deadline}. {self.st.stable} serves all traffic; the next model"
                    " version is rolled out again."
                ),
                phase=DeploymentPhase.ROLLED_BACK,
            )
        analysis = _canary_settings(self.spec).analysis
        la = self.st.last_analysis or AnalysisResult()
        problems = _problems(analysis, la.error_rate, la.latency_p95_ms) or "gates failed"
        figures = _figures(la.error_rate, la.latency_p95_ms, la.requests)
        return Verdict(
            ready=False,
            reason=Reason.ANALYSIS_FAILED,
            message=(
                f"Rolled back {self.st.rolled_back} after {analysis.max_failed_checks} failed"
                f" analyses; last: {problems} ({figures}). {self.st.stable} serves all"
                " traffic; the next model version is rolled out again."
            ),
            phase=DeploymentPhase.ROLLED_BACK,
        )

    def rolled_back(self) -> Decision:
        self.st.clear_candidate()
        stable = self.stable_revision(held=False)
        verdict = self.stable_verdict(stable)
        if verdict.ready:
            verdict = self.rolled_back_verdict()
        return self.steady(verdict)

    def start(self, name: str, uri: str) -> None:
        st = self.st
        if st.canary == name:
            return
        replacing = f", replacing {st.canary}" if st.canary else ""
        st.clear_candidate()
        st.canary, st.canary_uri = name, uri
        st.last_analysis = None
        # progressDeadline counts from here, not from a stuck first revision's wait.
        st.progress_started = self.now
        self.event(
            NORMAL,
            Reason.ROLLOUT_STARTED,
            f"Rolling out {name} ({uri}) beside {st.stable} with strategy"
            f" {self.spec.strategy.type.value}{replacing}.",
        )

    # --- strategies ----------------------------------------------------------------------

    def rolling(self, name: str, uri: str) -> Decision:
        st = self.st
        st.weight, st.step, st.step_started, st.failed = 0, None, None, None
        floor = self.held_floor(st.stable)
        if self.ready(name, floor):
            return self.promote(name, uri, keep_old=False)
        if self.past_deadline():
            return self.deadline_missed(name, floor)
        stable = self.stable_revision(held=True)
        candidate = self.revision(name, uri, Role.PREVIEW, floor)
        return self.decision(
            [stable, candidate, *self.previous_revision()],
            {stable.name: 100},
            self.progressing(
                Reason.DEPLOYING,
                f"Starting {name} ({uri}): {self.ready_text(name, floor)}; {stable.name}"
                " serves until all are ready.",
            ),
        )

    def blue_green(self, name: str, uri: str) -> Decision:
        st = self.st
        st.weight, st.step, st.step_started, st.failed = 0, None, None, None
        settings = self.spec.strategy.blue_green or BlueGreenStrategy()
        floor = self.held_floor(st.stable)
        stable = self.stable_revision(held=True)
        preview = self.revision(name, uri, Role.PREVIEW, floor)
        if not self.ready(name, floor):
            if self.past_deadline():
                return self.deadline_missed(name, floor)
            verdict = self.progressing(
                Reason.DEPLOYING,
                f"Starting preview {name} ({uri}): {self.ready_text(name, floor)};"
                f" {stable.name} serves all traffic.",
            )
        elif settings.auto_promote or self.i.approved_revision == name:
            return self.promote(name, uri, keep_old=True)
        else:
            verdict = self.progressing(
                Reason.AWAITING_PROMOTION,
                f"Preview {name} ({uri}) is ready; {stable.name} serves all traffic until"
                f" the ModelDeployment is annotated {PROMOTE_ANNOTATION}={name}.",
            )
        return self.decision(
            [stable, preview, *self.previous_revision()], {stable.name: 100}, verdict
        )

    def shadow(self, name: str, uri: str) -> Decision:
        st = self.st
        settings = self.spec.strategy.shadow or ShadowStrategy()
        if st.step is not None:  # coming from a canary: the shadow starts afresh
            st.step = st.step_started = st.failed = None
        st.weight = 0
        stable = self.stable_revision(held=False)
        assert st.stable_uri is not None
        replicas = share(
            max(stable.replicas, self.observed(stable.name).replicas), settings.percent
        )
        shadow = self.revision(name, st.stable_uri, Role.SHADOW, replicas, shadow_uri=uri)
        mirror = Mirror(name, settings.percent)
        revisions = [stable, shadow, *self.previous_revision()]
        if not self.ready(name, replicas):
            if self.past_deadline():
                return self.deadline_missed(name, replicas)
            st.step_started = None
            verdict = self.progressing(
                Reason.DEPLOYING,
                f"Starting shadow {name} ({uri}): {self.ready_text(name, replicas)}.",
            )
            return self.decision(revisions, {stable.name: 100}, verdict, mirror)
        if st.step_started is None:
            st.step_started = self.now
            self.event(
                NORMAL,
                Reason.SHADOWING,
                f"{name} receives a {settings.percent}% mirror of {stable.name}'s traffic.",
            )
        elif self.i.shadow is not None:
            f = self.i.shadow
            st.shadow = ShadowResult(
                agreement_rate=f.agreement_rate,
                latency_delta_ms=f.latency_delta_p95_ms,
                requests=None if f.requests is None else round(f.requests),
            )
        figures = st.shadow or ShadowResult()
        agreement = (
            "no data" if figures.agreement_rate is None else _percent(figures.agreement_rate)
        )
        delta = (
            "no data" if figures.latency_delta_ms is None else f"{figures.latency_delta_ms:+.0f} ms"
        )
        verdict = Verdict(
            ready=True,
            reason=Reason.SHADOWING,
            message=(
                f"{stable.name} serves all traffic; {name} ({uri}) gets {settings.percent}%"
                f" mirrored: agreement {agreement}, p95 delta {delta}. Change"
                " spec.strategy.type to roll it out."
            ),
            phase=DeploymentPhase.AVAILABLE,
        )
        return self.decision(revisions, {stable.name: 100}, verdict, mirror)

    def canary(self, name: str, uri: str) -> Decision:
        st = self.st
        settings = _canary_settings(self.spec)
        steps, analysis = settings.steps, settings.analysis
        step_duration = parse_duration(settings.step_duration)
        stable = self.stable_revision(held=True)
        floor = stable.replicas
        if st.step is None:
            st.step_started = None
        step = min(st.step or 0, len(steps) - 1)  # the steps may have been edited
        st.step = step
        where = f"step {step + 1} of {len(steps)}"

        def plan(replicas: int, verdict: Verdict) -> Decision:
            canary = self.revision(name, uri, Role.CANARY, replicas)
            weight = st.weight or 0
            return self.decision(
                [stable, canary, *self.previous_revision()],
                {stable.name: 100 - weight, name: weight},
                verdict,
            )

        if st.step_started is None:
            replicas = share(floor, steps[step])
            if not self.ready(name, replicas):
                if self.past_deadline():
                    return self.deadline_missed(name, replicas)
                st.weight = 0
                return plan(
                    replicas,
                    self.progressing(
                        Reason.CANARY_PROGRESSING,
                        f"Starting canary {name} ({uri}): {self.ready_text(name, replicas)};"
                        f" it gets {steps[step]}% of the traffic then.",
                    ),
                )
            st.step_started = self.now
            self.event(NORMAL, Reason.STEP_ADVANCED, f"{name} receives {steps[step]}% ({where}).")
        st.weight = steps[step]
        assert st.step_started is not None

        due = _next_analysis(self.spec, self._status_now())
        if self.i.analysis is not None and due is not None and self.now >= due:
            figures = self.i.analysis
            passed = judge(analysis, figures)
            st.last_analysis = AnalysisResult(
                time=self.now,
                error_rate=figures.error_rate,
                latency_p95_ms=figures.latency_p95_ms,
                requests=None if figures.requests is None else round(figures.requests),
                passed=passed,
            )
            if passed is False:
                st.failed = (st.failed or 0) + 1
                self.event(
                    WARNING,
                    Reason.CHECK_FAILED,
                    f"{name} failed analysis {st.failed} of {analysis.max_failed_checks}:"
                    f" {_problems(analysis, figures.error_rate, figures.latency_p95_ms)}"
                    f" ({_figures(figures.error_rate, figures.latency_p95_ms, figures.requests)}).",
                )
                if st.failed >= analysis.max_failed_checks:
                    return self.roll_back(name)

        last = st.last_analysis
        passed_here = bool(last and last.passed and last.time and last.time >= st.step_started)
        step_end = st.step_started + step_duration
        replicas = share(floor, steps[step])
        if self.now >= step_end and passed_here:
            if step + 1 < len(steps):
                nxt = steps[step + 1]
                replicas = share(floor, nxt)
                if self.ready(name, replicas):
                    st.step, st.step_started, st.weight = step + 1, self.now, nxt
                    where = f"step {step + 2} of {len(steps)}"
                    self.event(NORMAL, Reason.STEP_ADVANCED, f"{name} receives {nxt}% ({where}).")
                    self.wake.append(self.now + min(step_duration, self._interval()))
                    return plan(
                        replicas,
                        self.progressing(
                            Reason.CANARY_PROGRESSING,
                            f"Canary {name} at {nxt}% ({where}).",
                        ),
                    )
                if self.past_deadline():
                    return self.deadline_missed(name, replicas)
                return plan(
                    replicas,
                    self.progressing(
                        Reason.CANARY_PROGRESSING,
                        f"Canary {name} passed {where} at {st.weight}%; scaling it to"
                        f" {replicas} replicas for {nxt}% ({self.ready_text(name, replicas)}).",
                    ),
                )
            if self.ready(name, floor):
                return self.promote(name, uri, keep_old=False)
            if self.past_deadline():
                return self.deadline_missed(name, floor)
            return plan(
                floor,
                self.progressing(
                    Reason.CANARY_PROGRESSING,
                    f"Canary {name} passed every step; scaling it to the stable's {floor}"
                    f" replicas before promotion ({self.ready_text(name, floor)}).",
                ),
            )

        next_due = _next_analysis(self.spec, self._status_now())
        if next_due is not None:
            self.wake.append(next_due)
        if self.now < step_end:
            self.wake.append(step_end)
        if last is None or last.time is None or last.time < st.step_started:
            result = "no analysis yet in this step"
        elif last.passed is None:
            result = (
                f"last analysis inconclusive: {last.requests or 0} of"
                f" {analysis.min_requests} requests needed"
            )
        else:
            outcome = "passed" if last.passed else "failed"
            result = (
                f"last analysis {outcome}"
                f" ({_figures(last.error_rate, last.latency_p95_ms, last.requests)})"
            )
        return plan(
            replicas,
            self.progressing(
                Reason.CANARY_PROGRESSING,
                f"Canary {name} at {st.weight}% ({where}) since {st.step_started.isoformat()};"
                f" {result}; {st.failed or 0} of {analysis.max_failed_checks} checks failed.",
            ),
        )

    def _interval(self) -> timedelta:
        return parse_duration(_canary_settings(self.spec).analysis.interval)

    def _status_now(self) -> ModelDeploymentStatus:
        st = self.st
        return ModelDeploymentStatus(
            canary_revision=st.canary,
            canary_step=st.step,
            step_started_at=st.step_started,
            last_analysis=st.last_analysis,
        )

    def deadline_missed(self, name: str, needed: int) -> Decision:
        """The candidate waited progressDeadline for `needed` ready replicas: roll it back."""
        missed = MissedDeadline(
            revision=name,
            ready_replicas=self.observed(name).ready_replicas,
            replicas=needed,
            deadline=self.spec.progress_deadline,
        )
        return self.roll_back(name, missed)

    def roll_back(self, name: str, missed: MissedDeadline | None = None) -> Decision:
        st = self.st
        st.rolled_back, st.missed = name, missed
        st.clear_candidate()
        verdict = self.rolled_back_verdict()
        self.event(WARNING, Reason.ROLLED_BACK, verdict.message)
        return self.steady(verdict)


def decide(inputs: Inputs) -> Decision:
    """The revisions to run, the status to write and the Events to emit. Pure."""
    r = _Rollout(inputs)
    st = r.st
    if inputs.model_uri is None:
        return r.model_missing()
    r.expire_previous()
    if st.stable is None or st.stable_uri is None:
        target_uri = inputs.model_uri
        return r.first(revision_name(target_uri), target_uri)
    target_uri = inputs.model_uri
    taken = {
        name: uri
        for name, uri in (
            (st.stable, st.stable_uri),
            (st.previous, st.previous_uri),
            (st.canary, st.canary_uri),
        )
        if name is not None and uri is not None
    }
    target = next((n for n, u in taken.items() if u == target_uri), None)
    target = target or revision_name(target_uri, taken)

    if target == st.stable:
        r.abort_candidate(f"spec.model.uri points at the stable {st.stable} again")
        st.rolled_back = None
        return r.steady()
    if target == st.previous and (switched := r.switch_back()) is not None:
        return switched
    if target == st.rolled_back:
        return r.rolled_back()
    st.rolled_back = None
    r.start(target, target_uri)
    strategy = inputs.spec.strategy.type
    if strategy == StrategyType.CANARY:
        return r.canary(target, target_uri)
    if strategy == StrategyType.BLUE_GREEN:
        return r.blue_green(target, target_uri)
    if strategy == StrategyType.SHADOW:
        return r.shadow(target, target_uri)
    return r.rolling(target, target_uri)
