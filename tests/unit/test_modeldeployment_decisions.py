"""ModelDeployment rollout decisions: every transition of every strategy, with a fixed clock."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from maestro.operators.api.common import Reason
from maestro.operators.api.crdgen import crd_for
from maestro.operators.api.modeldeployment import (
    CanaryAnalysis,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)
from maestro.operators.decisions import invalid_spec
from maestro.operators.modeldeployment_decisions import (
    SHADOW_WINDOW,
    Decision,
    Inputs,
    MetricsQuery,
    RevisionFacts,
    Role,
    canary_query,
    concrete_uri,
    decide,
    judge,
    needs_resolution,
    parse_duration,
    registry_model,
    registry_version,
    revision_facts,
    revision_name,
    shadow_query,
    share,
)
from maestro.operators.reconcile import plan_status

pytestmark = pytest.mark.unit

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


CASES = [
    # --- any strategy ---------------------------------------------------------------------
    pytest.param(
        Case(spec(CANARY), {}, V3),
        Expect(
            "Progressing",
            Reason.DEPLOYING,
            None,
            {"v3": (Role.STABLE, 1)},
            {"v3": 100},
            status={"stableRevision": "v3", "stableModelUri": V3, "canaryRevision": None},
            message=("0 of 1 replicas ready",),
            requeue=5.0,
        ),
        id="first-revision-is-deployed-directly-whatever-the-strategy",
    ),
    pytest.param(
        Case(spec(), status(STABLE_V3, phase="Progressing"), V3, revisions=facts(v3=(1, 1))),
        Expect(
            "Available",
            Reason.AVAILABLE,
            True,
            {"v3": (Role.STABLE, 1)},
            {"v3": 100},
            status={"readyReplicas": 1},
        ),
        id="first-revision-ready-is-available",
    ),
    pytest.param(
        Case(spec(replicas={"min": 2, "max": 4}), STABLE_V3, V3, revisions=facts(v3=(2, 1))),
        Expect(
            "Degraded",
            Reason.REPLICAS_UNAVAILABLE,
            False,
            {"v3": (Role.STABLE, 2)},
            {"v3": 100},
            message=("1 of 2 replicas ready",),
        ),
        id="stable-below-min-is-degraded",
    ),
    pytest.param(
        Case(spec(), {}, None),
        Expect("Pending", Reason.MODEL_NOT_FOUND, False, {}, {}),
        id="unresolvable-model-without-stable-is-pending",
    ),
    pytest.param(
        Case(spec(CANARY), CANARY_AT_10, None, revisions=facts(v3=(1, 1))),
        Expect(
            "Degraded",
            Reason.MODEL_NOT_FOUND,
            False,
            {"v3": (Role.STABLE, 1)},
            {"v3": 100},
            events=(Reason.ROLLOUT_ABORTED,),
            status={"canaryRevision": None},
            message=("v3 keeps serving",),
        ),
        id="unresolvable-model-keeps-the-stable-and-drops-the-candidate",
    ),
    # --- Rolling --------------------------------------------------------------------------
    pytest.param(
        Case(spec(), STABLE_V3, V4, revisions=facts(v3=(3, 3))),
        Expect(
            "Progressing",
            Reason.DEPLOYING,
            None,
            {"v3": (Role.STABLE, 3), "v4": (Role.PREVIEW, 3)},
            {"v3": 100},
            events=(Reason.ROLLOUT_STARTED,),
            status={"canaryRevision": "v4", "canaryModelUri": V4, "canaryWeight": 0},
        ),
        id="rolling-new-version-comes-up-at-the-stable-size",
    ),
    pytest.param(
        Case(
            spec(),
            status(STABLE_V3, phase="Progressing", canaryRevision="v4", canaryModelUri=V4),
            V4,
            revisions=facts(v3=(3, 3), v4=(3, 3)),
        ),
        Expect(
            "Available",
            Reason.AVAILABLE,
            True,
            {"v4": (Role.STABLE, 1)},
            {"v4": 100},
            events=(Reason.PROMOTED,),
            status={"stableRevision": "v4", "stableModelUri": V4, "canaryRevision": None},
        ),
        id="rolling-switches-once-ready-and-drops-the-old-revision",
    ),
    # --- BlueGreen ------------------------------------------------------------------------
    pytest.param(
        Case(spec(BLUE_GREEN), STABLE_V3, V4, revisions=facts(v3=(2, 2), v4=(2, 1))),
        Expect(
            "Progressing",
            Reason.DEPLOYING,
            None,
            {"v3": (Role.STABLE, 2), "v4": (Role.PREVIEW, 2)},
            {"v3": 100},
            events=(Reason.ROLLOUT_STARTED,),
            message=("1 of 2 replicas ready",),
        ),
        id="blue-green-preview-starting",
    ),
    pytest.param(
        Case(
            spec(BLUE_GREEN),
            status(STABLE_V3, canaryRevision="v4", canaryModelUri=V4),
            V4,
            revisions=facts(v3=(2, 2), v4=(2, 2)),
        ),
        Expect(
            "Available",
            Reason.AVAILABLE,
            True,
            {"v4": (Role.STABLE, 1), "v3": (Role.PREVIOUS, 2)},
            {"v4": 100},
            events=(Reason.PROMOTED,),
            status={
                "stableRevision": "v4",
                "previousRevision": "v3",
                "previousModelUri": V3,
                "scaleDownAt": iso(300),
            },
            message=("v3 is kept until",),
            requeue=300.0,
        ),
        id="blue-green-auto-promotes-and-keeps-the-old-one",
    ),
    pytest.param(
        Case(
            spec(BLUE_GREEN_MANUAL),
            status(STABLE_V3, canaryRevision="v4", canaryModelUri=V4),
            V4,
            revisions=facts(v3=(2, 2), v4=(2, 2)),
        ),
        Expect(
            "Progressing",
            Reason.AWAITING_PROMOTION,
            None,
            {"v3": (Role.STABLE, 2), "v4": (Role.PREVIEW, 2)},
            {"v3": 100},
            # Serving replicas only: the ready preview takes no traffic yet.
            status={"readyReplicas": 2},
            message=("mlops.maestro.dev/promote=v4",),
        ),
        id="blue-green-manual-waits-for-approval",
    ),
    pytest.param(
        Case(
            spec(BLUE_GREEN_MANUAL),
            status(STABLE_V3, canaryRevision="v4", canaryModelUri=V4),
            V4,
            revisions=facts(v3=(2, 2), v4=(2, 2)),
            approved="v4",
        ),
        Expect(
            "Available",
            Reason.AVAILABLE,
            True,
            {"v4": (Role.STABLE, 1), "v3": (Role.PREVIOUS, 2)},
            {"v4": 100},
            events=(Reason.PROMOTED,),
        ),
        id="blue-green-manual-switches-when-approved",
    ),
    pytest.param(
        Case(
            spec(BLUE_GREEN_MANUAL),
            status(STABLE_V3, canaryRevision="v4", canaryModelUri=V4),
            V4,
            revisions=facts(v3=(2, 2), v4=(2, 2)),
            approved="v3",
        ),
        Expect(
            "Progressing",
            Reason.AWAITING_PROMOTION,
            None,
            {"v3": (Role.STABLE, 2), "v4": (Role.PREVIEW, 2)},
            {"v3": 100},
        ),
        id="blue-green-approval-of-another-revision-does-not-count",
    ),
    pytest.param(
        Case(
            spec(BLUE_GREEN_NO_DELAY),
            status(STABLE_V3, canaryRevision="v4", canaryModelUri=V4),
            V4,
            revisions=facts(v3=(2, 2), v4=(2, 2)),
        ),
        Expect(
            "Available",
            Reason.AVAILABLE,
            True,
            {"v4": (Role.STABLE, 1)},
            {"v4": 100},
            events=(Reason.PROMOTED,),
            status={"previousRevision": None},
        ),
        id="blue-green-without-delay-drops-the-old-one",
    ),
    pytest.param(
        Case(
            spec(BLUE_GREEN),
            status(
                phase="Available",
                stableRevision="v4",
                stableModelUri=V4,
                previousRevision="v3",
                previousModelUri=V3,
                scaleDownAt=iso(300),
            ),
            V4,
            now=at(120),
            revisions=facts(v3=(2, 2), v4=(2, 2)),
        ),
        Expect(
            "Available",
            Reason.AVAILABLE,
            True,
            {"v4": (Role.STABLE, 1), "v3": (Role.PREVIOUS, 2)},
            {"v4": 100},
            # Serving replicas only: the kept previous revision takes no traffic.
            status={"readyReplicas": 2},
            requeue=180.0,
        ),
        id="blue-green-previous-kept-within-the-delay",
    ),
    pytest.param(
        Case(
            spec(BLUE_GREEN),
            status(
                phase="Available",
                stableRevision="v4",
                stableModelUri=V4,
                previousRevision="v3",
                previousModelUri=V3,
                scaleDownAt=iso(300),
            ),
            V4,
            now=at(300),
            revisions=facts(v3=(2, 2), v4=(2, 2)),
        ),
        Expect(
            "Available",
            Reason.AVAILABLE,
            True,
            {"v4": (Role.STABLE, 1)},
            {"v4": 100},
            events=(Reason.SCALED_DOWN,),
            status={"previousRevision": None, "scaleDownAt": None},
        ),
        id="blue-green-previous-removed-after-the-delay",
    ),
    pytest.param(
        Case(
            spec(BLUE_GREEN),
            status(
                phase="Available",
                stableRevision="v4",
                stableModelUri=V4,
                previousRevision="v3",
                previousModelUri=V3,
                scaleDownAt=iso(300),
            ),
            V3,
            now=at(60),
            revisions=facts(v3=(2, 2), v4=(2, 2)),
        ),
        Expect(
            "Available",
            Reason.AVAILABLE,
            True,
            {"v3": (Role.STABLE, 1), "v4": (Role.PREVIOUS, 2)},
            {"v3": 100},
            events=(Reason.PROMOTED,),
            status={"stableRevision": "v3", "previousRevision": "v4", "scaleDownAt": iso(360)},
        ),
        id="blue-green-switches-back-at-once-within-the-delay",
    ),
    # --- Canary ---------------------------------------------------------------------------
    pytest.param(
        Case(spec(CANARY), STABLE_V3, V4, revisions=facts(v3=(4, 4))),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 4), "v4": (Role.CANARY, 1)},
            {"v3": 100},
            events=(Reason.ROLLOUT_STARTED,),
            status={"canaryRevision": "v4", "canaryWeight": 0, "canaryStep": 0},
            message=("0 of 1 replicas ready",),
        ),
        id="canary-starts-with-no-traffic-until-ready",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            status(CANARY_AT_10, canaryWeight=0, stepStartedAt=None),
            V4,
            revisions=facts(v3=(4, 4), v4=(1, 1)),
        ),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 4), "v4": (Role.CANARY, 1)},
            {"v3": 90, "v4": 10},
            events=(Reason.STEP_ADVANCED,),
            status={"canaryWeight": 10, "stepStartedAt": iso(0), "readyReplicas": 5},
            requeue=60.0,
        ),
        id="canary-ready-gets-the-first-step",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            CANARY_AT_10,
            V4,
            now=at(60),
            revisions=facts(v3=(4, 4), v4=(1, 1)),
            analysis=GOOD,
        ),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 4), "v4": (Role.CANARY, 1)},
            {"v3": 90, "v4": 10},
            status={
                "lastAnalysis": {
                    "time": iso(60),
                    "errorRate": 0.001,
                    "latencyP95Ms": 120.0,
                    "requests": 400,
                    "passed": True,
                },
                "canaryStep": 0,
            },
            message=("last analysis passed",),
            requeue=60.0,
        ),
        id="canary-analysis-passes-and-the-step-holds-its-duration",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            CANARY_AT_10,
            V4,
            now=at(60),
            revisions=facts(v3=(4, 4), v4=(1, 1)),
            analysis=FEW,
        ),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 4), "v4": (Role.CANARY, 1)},
            {"v3": 90, "v4": 10},
            status={"failedChecks": None},
            message=("inconclusive: 20 of 100 requests",),
        ),
        id="canary-analysis-with-too-few-requests-is-not-judged",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            CANARY_AT_10,
            V4,
            now=at(60),
            revisions=facts(v3=(4, 4), v4=(1, 1)),
            analysis=ERRORS,
        ),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 4), "v4": (Role.CANARY, 1)},
            {"v3": 90, "v4": 10},
            events=(Reason.CHECK_FAILED,),
            status={"failedChecks": 1},
            message=("1 of 2 checks failed",),
        ),
        id="canary-failed-check-is-counted",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            status(CANARY_AT_10, failedChecks=1, lastAnalysis=passed_at(60)),
            V4,
            now=at(120),
            revisions=facts(v3=(4, 4), v4=(1, 1)),
            analysis=SLOW,
        ),
        Expect(
            "RolledBack",
            Reason.ANALYSIS_FAILED,
            False,
            {"v3": (Role.STABLE, 1)},
            {"v3": 100},
            events=(Reason.CHECK_FAILED, Reason.ROLLED_BACK),
            status={
                "rolledBackRevision": "v4",
                "canaryRevision": None,
                "canaryWeight": None,
                "stableRevision": "v3",
            },
            message=("p95 900 ms > 500 ms", "requests 400", "v3 serves all traffic"),
        ),
        id="canary-rolls-back-after-max-failed-checks",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            status(CANARY_AT_10, lastAnalysis=passed_at(60)),
            V4,
            now=at(90),
            revisions=facts(v3=(4, 4), v4=(1, 1)),
            analysis=ERRORS,
        ),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 4), "v4": (Role.CANARY, 1)},
            {"v3": 90, "v4": 10},
            status={"failedChecks": None, "lastAnalysis": passed_at(60)},
            requeue=30.0,
        ),
        id="canary-figures-before-the-interval-are-ignored",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            status(CANARY_AT_10, lastAnalysis=passed_at(240)),
            V4,
            now=at(300),
            revisions=facts(v3=(4, 4), v4=(2, 2)),
            analysis=GOOD,
        ),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 4), "v4": (Role.CANARY, 2)},
            {"v3": 50, "v4": 50},
            events=(Reason.STEP_ADVANCED,),
            status={"canaryStep": 1, "canaryWeight": 50, "stepStartedAt": iso(300)},
        ),
        id="canary-advances-after-step-duration-and-a-passed-analysis",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            status(CANARY_AT_10, lastAnalysis=passed_at(300)),
            V4,
            now=at(300),
            revisions=facts(v3=(4, 4), v4=(1, 1)),
        ),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 4), "v4": (Role.CANARY, 2)},
            {"v3": 90, "v4": 10},
            status={"canaryStep": 0, "canaryWeight": 10},
            message=("scaling it to 2 replicas for 50%",),
            requeue=5.0,
        ),
        id="canary-weight-waits-for-the-replicas-it-needs",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            status(
                CANARY_AT_10,
                lastAnalysis={**passed_at(300), "requests": 10, "passed": None},
            ),
            V4,
            now=at(330),
            revisions=facts(v3=(4, 4), v4=(2, 2)),
        ),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 4), "v4": (Role.CANARY, 1)},
            {"v3": 90, "v4": 10},
            status={"canaryStep": 0},
            message=("inconclusive",),
        ),
        id="canary-does-not-advance-without-a-passed-analysis",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            status(
                CANARY_AT_10,
                canaryStep=2,
                canaryWeight=100,
                lastAnalysis=passed_at(300),
            ),
            V4,
            now=at(300),
            revisions=facts(v3=(4, 4), v4=(4, 4)),
        ),
        Expect(
            "Available",
            Reason.AVAILABLE,
            True,
            {"v4": (Role.STABLE, 1)},
            {"v4": 100},
            events=(Reason.PROMOTED,),
            status={"stableRevision": "v4", "canaryRevision": None, "canaryStep": None},
        ),
        id="canary-last-step-passed-promotes",
    ),
    pytest.param(
        Case(
            spec(CANARY_TWO_STEPS),
            status(
                CANARY_AT_10,
                canaryStep=1,
                canaryWeight=50,
                lastAnalysis=passed_at(300),
            ),
            V4,
            now=at(300),
            revisions=facts(v3=(4, 4), v4=(2, 2)),
        ),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 4), "v4": (Role.CANARY, 4)},
            {"v3": 50, "v4": 50},
            message=("before promotion", "2 of 4 replicas ready"),
        ),
        id="canary-scales-to-the-stable-size-before-promotion",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            status(CANARY_AT_10, canaryStep=1, canaryWeight=50),
            V4,
            now=at(30),
            revisions=facts(v3=(6, 6), v4=(3, 3)),
        ),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 6), "v4": (Role.CANARY, 3)},
            {"v3": 50, "v4": 50},
        ),
        id="canary-stable-scaled-up-by-the-hpa-is-held-and-the-canary-follows",
    ),
    pytest.param(
        Case(
            spec(CANARY, replicas={"min": 2, "max": 4}, autoscaling={"enabled": False}),
            CANARY_AT_10,
            V4,
            now=at(30),
            revisions=facts(v3=(5, 5), v4=(1, 1)),
        ),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 2), "v4": (Role.CANARY, 1)},
            {"v3": 90, "v4": 10},
        ),
        id="canary-without-autoscaling-pins-replicas-min",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            status(
                STABLE_V3,
                phase="RolledBack",
                rolledBackRevision="v4",
                lastAnalysis={**passed_at(60), "latencyP95Ms": 900.0, "passed": False},
            ),
            V4,
            now=at(3600),
            revisions=facts(v3=(1, 1)),
        ),
        Expect(
            "RolledBack",
            Reason.ANALYSIS_FAILED,
            False,
            {"v3": (Role.STABLE, 1)},
            {"v3": 100},
            status={"rolledBackRevision": "v4", "canaryRevision": None},
            message=("p95 900 ms > 500 ms",),
        ),
        id="rolled-back-version-is-not-retried",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            status(STABLE_V3, phase="RolledBack", rolledBackRevision="v4"),
            V5,
            revisions=facts(v3=(1, 1)),
        ),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 1), "v5": (Role.CANARY, 1)},
            {"v3": 100},
            events=(Reason.ROLLOUT_STARTED,),
            status={"rolledBackRevision": None, "canaryRevision": "v5"},
        ),
        id="a-new-version-after-a-rollback-is-rolled-out",
    ),
    pytest.param(
        Case(spec(CANARY), CANARY_AT_10, V3, now=at(30), revisions=facts(v3=(4, 4))),
        Expect(
            "Available",
            Reason.AVAILABLE,
            True,
            {"v3": (Role.STABLE, 1)},
            {"v3": 100},
            events=(Reason.ROLLOUT_ABORTED,),
            status={"canaryRevision": None, "canaryWeight": None, "stepStartedAt": None},
        ),
        id="canary-aborted-when-the-model-points-back-at-the-stable",
    ),
    pytest.param(
        Case(spec(CANARY), CANARY_AT_10, V5, now=at(30), revisions=facts(v3=(4, 4))),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 4), "v5": (Role.CANARY, 1)},
            {"v3": 100},
            events=(Reason.ROLLOUT_STARTED,),
            status={"canaryRevision": "v5", "canaryWeight": 0, "stepStartedAt": None},
            message=("Starting canary v5",),
        ),
        id="canary-replaced-by-a-newer-version-starts-over",
    ),
    # --- Shadow ---------------------------------------------------------------------------
    pytest.param(
        Case(spec(SHADOW), STABLE_V3, V4, revisions=facts(v3=(4, 4))),
        Expect(
            "Progressing",
            Reason.DEPLOYING,
            None,
            {"v3": (Role.STABLE, 1), "v4": (Role.SHADOW, 1)},
            {"v3": 100},
            events=(Reason.ROLLOUT_STARTED,),
            status={"canaryRevision": "v4", "canaryWeight": 0},
        ),
        id="shadow-starting",
    ),
    pytest.param(
        Case(
            spec(SHADOW),
            status(STABLE_V3, canaryRevision="v4", canaryModelUri=V4, canaryWeight=0),
            V4,
            revisions=facts(v3=(4, 4), v4=(1, 1)),
        ),
        Expect(
            "Available",
            Reason.SHADOWING,
            True,
            {"v3": (Role.STABLE, 1), "v4": (Role.SHADOW, 1)},
            {"v3": 100},
            events=(Reason.SHADOWING,),
            status={"stepStartedAt": iso(0), "readyReplicas": 4},
            message=("10% mirrored", "agreement no data"),
        ),
        id="shadow-ready-is-mirrored",
    ),
    pytest.param(
        Case(
            spec(SHADOW),
            status(
                STABLE_V3,
                canaryRevision="v4",
                canaryModelUri=V4,
                canaryWeight=0,
                stepStartedAt=iso(0),
            ),
            V4,
            now=at(600),
            revisions=facts(v3=(4, 4), v4=(1, 1)),
            shadow=ShadowFigures(0.97, 12.4, 1234.0),
        ),
        Expect(
            "Available",
            Reason.SHADOWING,
            True,
            {"v3": (Role.STABLE, 1), "v4": (Role.SHADOW, 1)},
            {"v3": 100},
            status={"shadow": {"agreementRate": 0.97, "latencyDeltaMs": 12.4, "requests": 1234}},
            message=("agreement 97.00%", "p95 delta +12 ms"),
        ),
        id="shadow-figures-reach-status",
    ),
    # --- progress deadline (default 10m) --------------------------------------------------
    pytest.param(
        Case(spec(), {}, V3),
        Expect(
            "Progressing",
            Reason.DEPLOYING,
            None,
            {"v3": (Role.STABLE, 1)},
            {"v3": 100},
            status={"progressStartedAt": iso(0)},
            requeue=5.0,
        ),
        id="deadline-first-revision-starts-the-clock-when-created",
    ),
    pytest.param(
        Case(
            spec(),
            status(STABLE_V3, phase="Progressing", progressStartedAt=iso(0)),
            V3,
            now=at(599),
            revisions=facts(v3=(1, 0)),
        ),
        Expect(
            "Progressing",
            Reason.DEPLOYING,
            None,
            {"v3": (Role.STABLE, 1)},
            {"v3": 100},
            status={"progressStartedAt": iso(0)},
            message=("0 of 1 replicas ready",),
            requeue=1.0,
        ),
        id="deadline-first-revision-not-yet-passed-is-progressing-and-wakes-at-it",
    ),
    pytest.param(
        Case(
            spec(),
            status(STABLE_V3, phase="Progressing", progressStartedAt=iso(0)),
            V3,
            now=at(600),
            revisions=facts(v3=(1, 0)),
        ),
        Expect(
            "Failed",
            Reason.PROGRESS_DEADLINE_EXCEEDED,
            False,
            {"v3": (Role.STABLE, 1)},
            {"v3": 100},
            status={"stableRevision": "v3", "progressStartedAt": iso(0)},
            message=(
                "v3 (models:/iris/3) has 0 of 1 replicas ready",
                "progressDeadline 10m",
                "Deployment is kept",
            ),
            requeue=5.0,
        ),
        id="deadline-first-revision-passed-is-failed-and-kept",
    ),
    pytest.param(
        Case(
            spec(replicas={"min": 3, "max": 4}),
            status(STABLE_V3, phase="Failed", progressStartedAt=iso(0)),
            V3,
            now=at(3600),
            revisions=facts(v3=(3, 2)),
        ),
        Expect(
            "Failed",
            Reason.PROGRESS_DEADLINE_EXCEEDED,
            False,
            {"v3": (Role.STABLE, 3)},
            {"v3": 100},
            message=("2 of 3 replicas ready",),
        ),
        id="deadline-first-revision-stays-failed-while-short-of-replicas",
    ),
    pytest.param(
        Case(
            spec(),
            status(STABLE_V3, phase="Failed", progressStartedAt=iso(0)),
            V3,
            now=at(900),
            revisions=facts(v3=(1, 1)),
        ),
        Expect(
            "Available",
            Reason.AVAILABLE,
            True,
            {"v3": (Role.STABLE, 1)},
            {"v3": 100},
            status={"progressStartedAt": None, "readyReplicas": 1},
        ),
        id="deadline-first-revision-ready-after-it-is-available",
    ),
    pytest.param(
        Case(spec(), STABLE_V3, V4, now=at(60), revisions=facts(v3=(3, 3))),
        Expect(
            "Progressing",
            Reason.DEPLOYING,
            None,
            {"v3": (Role.STABLE, 3), "v4": (Role.PREVIEW, 3)},
            {"v3": 100},
            events=(Reason.ROLLOUT_STARTED,),
            status={"progressStartedAt": iso(60)},
            requeue=5.0,
        ),
        id="deadline-rollout-start-starts-the-clock",
    ),
    pytest.param(
        Case(
            spec(),
            status(STABLE_V3, phase="Failed", progressStartedAt=iso(0)),
            V4,
            now=at(3600),
            revisions=facts(v3=(1, 0)),
        ),
        Expect(
            "Progressing",
            Reason.DEPLOYING,
            None,
            {"v3": (Role.STABLE, 1), "v4": (Role.PREVIEW, 1)},
            {"v3": 100},
            events=(Reason.ROLLOUT_STARTED,),
            status={"progressStartedAt": iso(3600)},
        ),
        id="deadline-a-new-version-does-not-inherit-a-stuck-first-revisions-clock",
    ),
    pytest.param(
        Case(
            spec(),
            status(
                STABLE_V3,
                phase="Progressing",
                canaryRevision="v4",
                canaryModelUri=V4,
                canaryWeight=0,
                progressStartedAt=iso(0),
            ),
            V4,
            now=at(599),
            revisions=facts(v3=(3, 3), v4=(3, 3)),
        ),
        Expect(
            "Available",
            Reason.AVAILABLE,
            True,
            {"v4": (Role.STABLE, 1)},
            {"v4": 100},
            events=(Reason.PROMOTED,),
            status={"stableRevision": "v4", "progressStartedAt": None, "rolledBackRevision": None},
        ),
        id="deadline-rolling-ready-just-before-it-is-promoted",
    ),
    pytest.param(
        Case(
            spec(),
            status(
                STABLE_V3,
                phase="Progressing",
                canaryRevision="v4",
                canaryModelUri=V4,
                canaryWeight=0,
                progressStartedAt=iso(0),
            ),
            V4,
            now=at(600),
            revisions=facts(v3=(3, 3), v4=(3, 2)),
        ),
        Expect(
            "RolledBack",
            Reason.PROGRESS_DEADLINE_EXCEEDED,
            False,
            {"v3": (Role.STABLE, 1)},
            {"v3": 100},
            events=(Reason.ROLLED_BACK,),
            status={
                "rolledBackRevision": "v4",
                "canaryRevision": None,
                "progressStartedAt": None,
                "missedDeadline": {
                    "revision": "v4",
                    "readyReplicas": 2,
                    "replicas": 3,
                    "deadline": "10m",
                },
            },
            message=("Rolled back v4: 2 of 3 replicas ready", "v3 serves all traffic"),
        ),
        id="deadline-rolling-passed-rolls-back",
    ),
    pytest.param(
        Case(
            spec(BLUE_GREEN_MANUAL, progressDeadline="5m"),
            status(
                STABLE_V3,
                phase="Progressing",
                canaryRevision="v4",
                canaryModelUri=V4,
                canaryWeight=0,
                progressStartedAt=iso(0),
            ),
            V4,
            now=at(299),
            revisions=facts(v3=(2, 2), v4=(2, 2)),
        ),
        Expect(
            "Progressing",
            Reason.AWAITING_PROMOTION,
            None,
            {"v3": (Role.STABLE, 2), "v4": (Role.PREVIEW, 2)},
            {"v3": 100},
            status={"progressStartedAt": None},
        ),
        id="deadline-blue-green-preview-ready-stops-the-clock",
    ),
    pytest.param(
        Case(
            spec(BLUE_GREEN_MANUAL, progressDeadline="5m"),
            status(STABLE_V3, phase="Progressing", canaryRevision="v4", canaryModelUri=V4),
            V4,
            now=at(86400),
            revisions=facts(v3=(2, 2), v4=(2, 2)),
        ),
        Expect(
            "Progressing",
            Reason.AWAITING_PROMOTION,
            None,
            {"v3": (Role.STABLE, 2), "v4": (Role.PREVIEW, 2)},
            {"v3": 100},
        ),
        id="deadline-blue-green-awaiting-approval-is-not-a-wait",
    ),
    pytest.param(
        Case(
            spec(BLUE_GREEN, progressDeadline="5m"),
            status(
                STABLE_V3,
                phase="Progressing",
                canaryRevision="v4",
                canaryModelUri=V4,
                canaryWeight=0,
                progressStartedAt=iso(0),
            ),
            V4,
            now=at(300),
            revisions=facts(v3=(2, 2), v4=(2, 0)),
        ),
        Expect(
            "RolledBack",
            Reason.PROGRESS_DEADLINE_EXCEEDED,
            False,
            {"v3": (Role.STABLE, 1)},
            {"v3": 100},
            events=(Reason.ROLLED_BACK,),
            status={"rolledBackRevision": "v4", "canaryRevision": None},
            message=("0 of 2 replicas ready after progressDeadline 5m",),
        ),
        id="deadline-blue-green-preview-passed-rolls-back",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            status(CANARY_AT_10, canaryWeight=0, stepStartedAt=None, progressStartedAt=iso(0)),
            V4,
            now=at(300),
            revisions=facts(v3=(4, 4), v4=(1, 0)),
        ),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 4), "v4": (Role.CANARY, 1)},
            {"v3": 100},
            status={"progressStartedAt": iso(0), "rolledBackRevision": None},
            message=("0 of 1 replicas ready",),
        ),
        id="deadline-canary-not-yet-passed-is-progressing",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            status(CANARY_AT_10, canaryWeight=0, stepStartedAt=None, progressStartedAt=iso(0)),
            V4,
            now=at(600),
            revisions=facts(v3=(4, 4), v4=(1, 0)),
        ),
        Expect(
            "RolledBack",
            Reason.PROGRESS_DEADLINE_EXCEEDED,
            False,
            {"v3": (Role.STABLE, 1)},
            {"v3": 100},
            events=(Reason.ROLLED_BACK,),
            status={
                "rolledBackRevision": "v4",
                "canaryRevision": None,
                "canaryWeight": None,
                "canaryStep": None,
                "stableRevision": "v3",
                "progressStartedAt": None,
                "missedDeadline": {
                    "revision": "v4",
                    "readyReplicas": 0,
                    "replicas": 1,
                    "deadline": "10m",
                },
            },
            message=(
                "Rolled back v4: 0 of 1 replicas ready after progressDeadline 10m",
                "v3 serves all traffic",
            ),
        ),
        id="deadline-canary-passed-before-its-first-step-rolls-back",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            status(CANARY_AT_10, lastAnalysis=passed_at(300)),
            V4,
            now=at(300),
            revisions=facts(v3=(4, 4), v4=(2, 1)),
        ),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 4), "v4": (Role.CANARY, 2)},
            {"v3": 90, "v4": 10},
            status={"progressStartedAt": iso(300)},
            message=("scaling it to 2 replicas for 50%",),
        ),
        id="deadline-canary-scaling-for-the-next-step-starts-a-new-wait",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            status(CANARY_AT_10, lastAnalysis=passed_at(840), progressStartedAt=iso(300)),
            V4,
            now=at(900),
            revisions=facts(v3=(4, 4), v4=(2, 1)),
        ),
        Expect(
            "RolledBack",
            Reason.PROGRESS_DEADLINE_EXCEEDED,
            False,
            {"v3": (Role.STABLE, 1)},
            {"v3": 100},
            events=(Reason.ROLLED_BACK,),
            status={"rolledBackRevision": "v4", "canaryWeight": None},
            message=("1 of 2 replicas ready",),
        ),
        id="deadline-canary-that-cannot-scale-for-the-next-step-rolls-back",
    ),
    pytest.param(
        Case(
            spec({**CANARY, "canary": {"steps": [10, 50, 100], "stepDuration": "1h"}}),
            status(CANARY_AT_10, lastAnalysis=passed_at(1140)),
            V4,
            now=at(1200),
            revisions=facts(v3=(4, 4), v4=(1, 1)),
            analysis=GOOD,
        ),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 4), "v4": (Role.CANARY, 1)},
            {"v3": 90, "v4": 10},
            status={"progressStartedAt": None, "canaryWeight": 10},
            message=("last analysis passed",),
        ),
        id="deadline-canary-step-held-longer-is-not-a-wait",
    ),
    pytest.param(
        Case(
            spec(SHADOW, progressDeadline="1m"),
            status(
                STABLE_V3,
                phase="Progressing",
                canaryRevision="v4",
                canaryModelUri=V4,
                canaryWeight=0,
                progressStartedAt=iso(0),
            ),
            V4,
            now=at(60),
            revisions=facts(v3=(4, 4), v4=(1, 0)),
        ),
        Expect(
            "RolledBack",
            Reason.PROGRESS_DEADLINE_EXCEEDED,
            False,
            {"v3": (Role.STABLE, 1)},
            {"v3": 100},
            events=(Reason.ROLLED_BACK,),
            status={"rolledBackRevision": "v4", "canaryRevision": None},
            message=("progressDeadline 1m",),
        ),
        id="deadline-shadow-passed-rolls-back",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            status(STABLE_V3, phase="RolledBack", rolledBackRevision="v4", missedDeadline=MISSED),
            V4,
            now=at(3600),
            revisions=facts(v3=(1, 1)),
        ),
        Expect(
            "RolledBack",
            Reason.PROGRESS_DEADLINE_EXCEEDED,
            False,
            {"v3": (Role.STABLE, 1)},
            {"v3": 100},
            status={"rolledBackRevision": "v4", "canaryRevision": None, "missedDeadline": MISSED},
            message=("Rolled back v4: 0 of 1 replicas ready after progressDeadline 10m",),
        ),
        id="deadline-rolled-back-version-is-not-retried",
    ),
    pytest.param(
        Case(
            spec(CANARY),
            status(STABLE_V3, phase="RolledBack", rolledBackRevision="v4", missedDeadline=MISSED),
            V5,
            revisions=facts(v3=(1, 1)),
        ),
        Expect(
            "Progressing",
            Reason.CANARY_PROGRESSING,
            None,
            {"v3": (Role.STABLE, 1), "v5": (Role.CANARY, 1)},
            {"v3": 100},
            events=(Reason.ROLLOUT_STARTED,),
            status={
                "rolledBackRevision": None,
                "missedDeadline": None,
                "canaryRevision": "v5",
                "progressStartedAt": iso(0),
            },
        ),
        id="deadline-a-new-version-after-the-rollback-is-rolled-out",
    ),
]


@pytest.mark.parametrize(("case", "expect"), CASES)
def test_transition(case: Case, expect: Expect) -> None:
    decision = run(case)
    verdict = decision.verdict
    assert (verdict.phase, verdict.reason, verdict.ready) == (
        expect.phase,
        expect.reason,
        expect.ready,
    ), verdict.message
    plan = {r.name: (r.role, r.replicas) for r in decision.plan.revisions}
    assert plan == expect.revisions
    assert dict(decision.plan.weights) == expect.weights
    assert tuple(e.reason for e in decision.events) == expect.events, decision.events
    for key, value in (expect.status or {}).items():
        assert decision.status[key] == value, key
    for fragment in expect.message:
        assert fragment in verdict.message, verdict.message
    if expect.requeue is not None:
        assert decision.requeue_after == expect.requeue


def test_a_new_model_with_a_taken_version_number_gets_a_hash_revision() -> None:
    decision = run(Case(spec(), STABLE_V3, "models:/wine/3", revisions=facts(v3=(1, 1))))
    (candidate,) = [r for r in decision.plan.revisions if r.role == Role.PREVIEW]
    assert candidate.model_uri == "models:/wine/3"
    assert candidate.name == revision_name("models:/wine/3", {"v3": V3})
    assert candidate.name != "v3" and len(candidate.name) == 8


def test_shadow_pods_serve_the_stable_and_shadow_the_candidate() -> None:
    decision = run(Case(spec(SHADOW), STABLE_V3, V4, revisions=facts(v3=(4, 4))))
    shadow = decision.plan.get("v4")
    assert shadow is not None
    assert (shadow.model_uri, shadow.shadow_model_uri) == (V3, V4)
    assert shadow.model_version == "3"
    assert decision.plan.mirror is not None
    assert (decision.plan.mirror.revision, decision.plan.mirror.percent) == ("v4", 10)


# --- the loop: decide -> status -> facts, as a handler would run it -------------------------


def _simulate(
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


def test_a_healthy_canary_walks_every_step_to_promotion() -> None:
    trail, events, final = _simulate(spec(CANARY), GOOD)
    assert trail == [
        ("Progressing", 0),
        ("Progressing", 10),
        ("Progressing", 50),
        ("Progressing", 100),
        ("Available", None),
    ]
    assert events == [
        Reason.ROLLOUT_STARTED,
        Reason.STEP_ADVANCED,
        Reason.STEP_ADVANCED,
        Reason.STEP_ADVANCED,
        Reason.PROMOTED,
    ]
    assert final["stableRevision"] == "v4" and "canaryRevision" not in final
    (ready,) = [c for c in final["conditions"] if c["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == ("True", "Available")


def test_a_failing_canary_rolls_back_and_stays_rolled_back() -> None:
    trail, events, final = _simulate(spec(CANARY), ERRORS)
    assert trail == [("Progressing", 0), ("Progressing", 10), ("RolledBack", None)]
    assert events == [
        Reason.ROLLOUT_STARTED,
        Reason.STEP_ADVANCED,
        Reason.CHECK_FAILED,
        Reason.CHECK_FAILED,
        Reason.ROLLED_BACK,
    ]
    assert final["rolledBackRevision"] == "v4" and final["stableRevision"] == "v3"
    assert final["lastAnalysis"]["errorRate"] == 0.05


def _ready_condition(final: dict[str, Any]) -> dict[str, Any]:
    (ready,) = [c for c in final["conditions"] if c["type"] == "Ready"]
    return ready


NEVER = float("inf")


def test_a_canary_that_never_gets_ready_is_rolled_back_at_the_deadline() -> None:
    warnings: list[tuple[str, str, datetime]] = []
    trail, events, final = _simulate(
        spec(CANARY), GOOD, ticks=400, ready_after={"v4": NEVER}, warnings=warnings
    )
    assert trail == [("Progressing", 0), ("RolledBack", None)]
    assert events == [Reason.ROLLOUT_STARTED, Reason.ROLLED_BACK]
    assert final["stableRevision"] == "v3" and "canaryRevision" not in final
    assert final["rolledBackRevision"] == "v4" and "progressStartedAt" not in final
    assert final["missedDeadline"] == MISSED
    ready = _ready_condition(final)
    assert (ready["status"], ready["reason"]) == ("False", "ProgressDeadlineExceeded")
    # Not a poll later: requeue_after woke the loop exactly at the deadline.
    assert ready["lastTransitionTime"] == iso(600)
    assert [(reason, when) for reason, _, when in warnings] == [
        ("ProgressDeadlineExceeded", at(600)),
        ("RolledBack", at(600)),
    ]
    assert all("v4: 0 of 1 replicas ready" in message for _, message, _ in warnings)


def test_a_first_revision_that_misses_the_deadline_fails_then_recovers() -> None:
    warnings: list[tuple[str, str, datetime]] = []
    trail, events, final = _simulate(
        spec(),
        GOOD,
        ticks=400,
        initial={},
        model_uri=V3,
        ready_after={"v3": 900},
        warnings=warnings,
    )
    assert trail == [("Progressing", None), ("Failed", None), ("Available", None)]
    assert events == []
    # One Warning for the whole stretch as Failed, at the deadline.
    assert [(reason, when) for reason, _, when in warnings] == [
        ("ProgressDeadlineExceeded", at(600))
    ]
    assert final["stableRevision"] == "v3" and "progressStartedAt" not in final
    ready = _ready_condition(final)
    assert (ready["status"], ready["reason"]) == ("True", "Available")


def test_a_rollout_ready_just_before_the_deadline_is_promoted() -> None:
    warnings: list[tuple[str, str, datetime]] = []
    trail, events, final = _simulate(
        spec(), GOOD, ticks=400, ready_after={"v4": 590}, warnings=warnings
    )
    assert trail == [("Progressing", 0), ("Available", None)]
    assert events == [Reason.ROLLOUT_STARTED, Reason.PROMOTED]
    assert warnings == []
    assert final["stableRevision"] == "v4" and "rolledBackRevision" not in final
    assert _ready_condition(final)["lastTransitionTime"] < iso(600)


# --- spec.progressDeadline ---------------------------------------------------------------------


def test_progress_deadline_defaults_to_ten_minutes() -> None:
    assert spec().progress_deadline == "10m"
    crd = crd_for(ModelDeployment)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    field = crd["properties"]["spec"]["properties"]["progressDeadline"]
    assert field["default"] == "10m" and field["type"] == "string"
    assert parse_duration(spec(progressDeadline="1h30m").progress_deadline) == timedelta(minutes=90)


@pytest.mark.parametrize("value", ["10", "1.5m", "ten minutes", "10 m", "0s", "0m0s", ""])
def test_progress_deadline_rejects_what_is_not_a_positive_duration(value: str) -> None:
    with pytest.raises(ValidationError) as err:
        spec(progressDeadline=value)
    (error,) = err.value.errors()
    assert error["loc"] == ("progressDeadline",)
    # The operator's message for a spec the API server let through names the field too.
    assert "spec.progressDeadline" in invalid_spec("ModelDeployment", err.value).message
    # The API server checks the same pattern, from the CRD, before the operator sees it.
    crd = crd_for(ModelDeployment)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    pattern = crd["properties"]["spec"]["properties"]["progressDeadline"]["pattern"]
    assert re.search(pattern, value) is None


@pytest.mark.parametrize("value", ["30s", "10m", "1h30m", "0h45s", "05m", "7d"])
def test_progress_deadline_accepts_positive_durations(value: str) -> None:
    assert parse_duration(spec(progressDeadline=value).progress_deadline) > timedelta(0)


# --- the pure helpers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "taken", "expected"),
    [
        ("models:/iris/3", {}, "v3"),
        ("models:/iris/3", {"v3": "models:/iris/3"}, "v3"),
        ("runs:/0a1b2c/model", {}, None),
        ("models:/iris/123456789012345", {}, None),
    ],
    ids=["registry-version", "same-uri-same-name", "run-uri-hashed", "huge-version-hashed"],
)
def test_revision_names(uri: str, taken: dict[str, str], expected: str | None) -> None:
    import hashlib

    name = revision_name(uri, taken)
    assert name == (expected or hashlib.sha256(uri.encode()).hexdigest()[:8])


@pytest.mark.parametrize(
    ("uri", "model", "version", "resolve"),
    [
        ("models:/iris/3", "iris", "3", False),
        ("models:/iris@champion", "iris", None, True),
        ("models:/iris/Production", "iris", None, True),
        ("models:/iris/latest", "iris", None, True),
        ("runs:/0a1b/model", None, None, False),
        ("s3://bucket/model", None, None, False),
    ],
    ids=["version", "alias", "stage", "latest", "run", "s3"],
)
def test_registry_uris(uri: str, model: str | None, version: str | None, resolve: bool) -> None:
    assert registry_model(uri) == model
    assert registry_version(uri) == version
    assert needs_resolution(uri) is resolve


def test_concrete_uri_pins_the_resolved_version() -> None:
    assert concrete_uri("models:/iris@champion", 7) == "models:/iris/7"
    with pytest.raises(ValueError, match="runs:/x/model"):
        concrete_uri("runs:/x/model", 1)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("7d", 604800), ("0s", 0)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5", "1.5m", "m5", "5w"])
def test_parse_duration_refuses_other_forms(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("replicas", "percent", "expected"),
    [(4, 10, 1), (4, 50, 2), (5, 50, 3), (4, 100, 4), (1, 1, 1), (10, 25, 3)],
)
def test_share_rounds_up_to_at_least_one(replicas: int, percent: int, expected: int) -> None:
    assert share(replicas, percent) == expected


@pytest.mark.parametrize(
    ("figures", "expected"),
    [
        (GOOD, True),
        (ERRORS, False),
        (SLOW, False),
        (FEW, None),
        (Figures(None, None, None), None),
        # No 5xx series and no latency data but enough requests: nothing is over a limit.
        (Figures(None, None, 500.0), True),
        (Figures(0.01, 500.0, 100.0), True),  # limits are inclusive
    ],
    ids=["good", "errors", "slow", "few", "no-data", "no-errors", "at-the-limits"],
)
def test_judge(figures: Figures, expected: bool | None) -> None:
    assert judge(CanaryAnalysis(), figures) is expected


def test_revision_facts_count_only_ready_pods_of_the_current_template() -> None:
    rolling = {"spec": {"replicas": 3}, "status": {"readyReplicas": 3, "updatedReplicas": 1}}
    assert revision_facts(rolling) == RevisionFacts(3, 1)
    fresh = {"spec": {"replicas": 2}, "status": {}}
    assert revision_facts(fresh) == RevisionFacts(2, 0)


@pytest.mark.parametrize(
    ("fields", "now", "expected"),
    [
        ({}, at(59), None),
        ({}, at(60), MetricsQuery("v4", "1m")),
        ({"lastAnalysis": passed_at(60)}, at(90), None),
        ({"lastAnalysis": passed_at(60)}, at(120), MetricsQuery("v4", "1m")),
        ({"stepStartedAt": None}, at(600), None),
        ({"canaryStep": None}, at(600), None),
    ],
    ids=[
        "first-interval-not-over",
        "first-interval-over",
        "since-last-analysis",
        "next-interval",
        "canary-not-taking-traffic",
        "not-a-canary-step",
    ],
)
def test_canary_query(fields: dict[str, Any], now: datetime, expected: MetricsQuery | None) -> None:
    current = ModelDeploymentStatus.model_validate({**CANARY_AT_10, **fields})
    assert canary_query(spec(CANARY), current, now) == expected


def test_shadow_query_names_the_shadow_revision() -> None:
    current = ModelDeploymentStatus.model_validate({**STABLE_V3, "canaryRevision": "v4"})
    assert shadow_query(spec(SHADOW), current) == MetricsQuery("v4", SHADOW_WINDOW)
    assert shadow_query(spec(CANARY), current) is None
    assert shadow_query(spec(SHADOW), ModelDeploymentStatus()) is None
