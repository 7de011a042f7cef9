"""Builders shared by the ModelDeployment decision tests (test_modeldeployment_decide_*.py):
a fixed clock, specs and statuses, the transition table's Case/Expect, and the loop that runs
`decide` the way the handler does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from maestro.operators.api.common import Reason
from maestro.operators.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from maestro.operators.core.status import plan_status
from maestro.operators.modeldeployment.decide import (
    Decision,
    Inputs,
    RevisionFacts,
    Role,
    canary_query,
    decide,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
V3, V4, V5 = "models:/iris/3", "models:/iris/4", "models:/iris/5"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def iso(seconds: float) -> str:
    return at(seconds).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Figures:
    error_rate: float | None
    latency_p95_ms: float | None
    requests: float | None


@dataclass(frozen=True)
class ShadowFigures:
    agreement_rate: float | None
    latency_delta_p95_ms: float | None
    requests: float | None


GOOD = Figures(0.001, 120.0, 400.0)
ERRORS = Figures(0.05, 120.0, 400.0)
SLOW = Figures(0.0, 900.0, 400.0)
FEW = Figures(0.0, 100.0, 20.0)

CANARY = {"type": "Canary", "canary": {"steps": [10, 50, 100], "stepDuration": "5m"}}
CANARY_TWO_STEPS = {"type": "Canary", "canary": {"steps": [10, 50], "stepDuration": "5m"}}
BLUE_GREEN = {"type": "BlueGreen"}
BLUE_GREEN_MANUAL = {"type": "BlueGreen", "blueGreen": {"autoPromote": False}}
BLUE_GREEN_NO_DELAY = {"type": "BlueGreen", "blueGreen": {"scaleDownDelay": "0s"}}
SHADOW = {"type": "Shadow", "shadow": {"percent": 10}}


def spec(strategy: dict[str, Any] | None = None, **fields: Any) -> ModelDeploymentSpec:
    return ModelDeploymentSpec.model_validate(
        {
            "model": {"uri": "models:/iris@champion"},
            "replicas": {"min": 1, "max": 8},
            "strategy": strategy or {},
            **fields,
        }
    )


def status(base: dict[str, Any] | None = None, /, **fields: Any) -> dict[str, Any]:
    return {**(base or {}), **fields}


def fixed(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


STABLE_V3 = {"phase": "Available", "stableRevision": "v3", "stableModelUri": V3}
# A canary of v4 whose step 0 (10%) began at T0.
CANARY_AT_10 = {
    **STABLE_V3,
    "phase": "Progressing",
    "canaryRevision": "v4",
    "canaryModelUri": V4,
    "canaryWeight": 10,
    "canaryStep": 0,
    "stepStartedAt": iso(0),
}


# v4 rolled back at its progress deadline with no replica ready.
MISSED = {"revision": "v4", "readyReplicas": 0, "replicas": 1, "deadline": "10m"}


def passed_at(seconds: float) -> dict[str, Any]:
    return {
        "time": iso(seconds),
        "errorRate": 0.0,
        "latencyP95Ms": 100.0,
        "requests": 400,
        "passed": True,
    }


def facts(**ready: tuple[int, int]) -> dict[str, RevisionFacts]:
    return {name: RevisionFacts(*counts) for name, counts in ready.items()}


# --- the transition table ---------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    spec: ModelDeploymentSpec
    status: dict[str, Any]
    model_uri: str | None
    now: datetime = T0
    revisions: dict[str, RevisionFacts] | None = None
    analysis: Figures | None = None
    shadow: ShadowFigures | None = None
    approved: str | None = None


@dataclass(frozen=True)
class Expect:
    phase: str
    reason: Reason
    ready: bool | None
    revisions: dict[str, tuple[Role, int]]
    weights: dict[str, int]
    events: tuple[Reason, ...] = ()
    status: dict[str, Any] | None = None
    message: tuple[str, ...] = ()
    requeue: float | None = None


def run(case: Case) -> Decision:
    return decide(
        Inputs(
            spec=case.spec,
            status=ModelDeploymentStatus.model_validate(case.status),
            model_uri=case.model_uri,
            now=case.now,
            revisions=case.revisions or {},
            analysis=case.analysis,
            shadow=case.shadow,
            approved_revision=case.approved,
        )
    )


def observed(decision: Decision, expect: Expect) -> dict[str, Any]:
    """What `decision` shows of everything `expect` names, in `wanted`'s shape: status
    fields, message fragments and the requeue delay only where `expect` gives them."""
    verdict = decision.verdict
    seen: dict[str, Any] = {
        "verdict": (verdict.phase, verdict.reason, verdict.ready),
        "revisions": {r.name: (r.role, r.replicas) for r in decision.plan.revisions},
        "weights": dict(decision.plan.weights),
        "events": tuple(e.reason for e in decision.events),
        "status": {key: decision.status[key] for key in expect.status or {}},
        "message": {fragment: fragment in verdict.message for fragment in expect.message},
    }
    if expect.requeue is not None:
        seen["requeue"] = decision.requeue_after
    return seen


def wanted(expect: Expect) -> dict[str, Any]:
    want: dict[str, Any] = {
        "verdict": (expect.phase, expect.reason, expect.ready),
        "revisions": expect.revisions,
        "weights": expect.weights,
        "events": expect.events,
        "status": dict(expect.status or {}),
        "message": dict.fromkeys(expect.message, True),
    }
    if expect.requeue is not None:
        want["requeue"] = expect.requeue
    return want


# --- the loop: decide -> status -> facts, as a handler would run it -------------------------

NEVER = float("inf")


def simulate(
    spec_: ModelDeploymentSpec,
    figures: Figures,
    *,
    stable_replicas: int = 4,
    ticks: int = 60,
    initial: dict[str, Any] | None = None,
    model_uri: str = V4,
    ready_after: dict[str, float] | None = None,
    warnings: list[tuple[str, str, datetime]] | None = None,
) -> tuple[list[tuple[str, int | None]], list[Reason], dict[str, Any]]:
    """Run decide until it settles: every revision becomes ready at its planned size (those
    in `ready_after` only from that many seconds on) and the canary's analysis always
    reports `figures`. Returns (phase, canaryWeight) per tick where either changed, the
    Events, and the final status. `warnings` collects (reason, message, time) of the Warning
    Events the handler emits: a Ready transition to False first, then the decision's."""
    raw: dict[str, Any] = (
        {"phase": "Available", "stableRevision": "v3", "stableModelUri": V3}
        if initial is None
        else dict(initial)
    )
    live = {} if initial is not None else {"v3": RevisionFacts(stable_replicas, stable_replicas)}
    now = T0
    trail: list[tuple[str, int | None]] = []
    events: list[Reason] = []
    for _ in range(ticks):
        current = ModelDeploymentStatus.model_validate(raw)
        query = canary_query(spec_, current, now)
        decision = decide(
            Inputs(
                spec_,
                current,
                model_uri,
                now,
                revisions=live,
                analysis=figures if query is not None else None,
            )
        )
        events += [e.reason for e in decision.events]
        planned = plan_status(
            ModelDeploymentStatus,
            raw,
            decision.verdict,
            generation=1,
            clock=fixed(now),
            extra=decision.status,
        )
        patch = planned.patch
        if warnings is not None:
            if planned.transition is not None and planned.transition.status == "False":
                warnings.append((planned.transition.reason, planned.transition.message, now))
            warnings += [(e.reason, e.message, now) for e in decision.events if e.type == "Warning"]
        raw = {k: v for k, v in {**raw, **patch}.items() if v is not None}
        point = (raw["phase"], raw.get("canaryWeight"))
        if not trail or trail[-1] != point:
            trail.append(point)
        # The cluster catches up: each planned revision runs its floor, all ready (unless
        # its pods are not ready yet).
        sizes = {
            r.name: max(r.replicas, live.get(r.name, RevisionFacts(0, 0)).replicas)
            for r in decision.plan.revisions
        }
        late = {
            name
            for name, seconds in (ready_after or {}).items()
            if (now - T0).total_seconds() < seconds
        }
        live = {
            name: RevisionFacts(size, 0 if name in late else size) for name, size in sizes.items()
        }
        if decision.requeue_after is None:
            break
        now += timedelta(seconds=decision.requeue_after)
    return trail, events, raw


def ready_condition(final: dict[str, Any]) -> dict[str, Any]:
    (ready,) = [c for c in final["conditions"] if c["type"] == "Ready"]
    return ready
