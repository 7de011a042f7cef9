"""ModelDeployment decisions of the Shadow strategy, with a fixed clock."""

from __future__ import annotations

import pytest

from maestro.operators.api.common import Reason
from maestro.operators.api.modeldeployment import ModelDeploymentStatus
from maestro.operators.modeldeployment.decide import SHADOW_WINDOW, MetricsQuery, Role, shadow_query
from tests.unit.modeldeployment_cases import (
    CANARY,
    SHADOW,
    STABLE_V3,
    V3,
    V4,
    Case,
    Expect,
    ShadowFigures,
    at,
    facts,
    iso,
    observed,
    run,
    spec,
    status,
    wanted,
)

pytestmark = pytest.mark.unit

CASES = [
    # --- Shadow -----------------------------------------------------------------------
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
    # --- progress deadline ------------------------------------------------------------
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
]


@pytest.mark.parametrize(("case", "expect"), CASES)
def test_transition(case: Case, expect: Expect) -> None:
    decision = run(case)
    assert observed(decision, expect) == wanted(expect), decision.verdict.message


def test_shadow_pods_serve_the_stable_and_shadow_the_candidate() -> None:
    decision = run(Case(spec(SHADOW), STABLE_V3, V4, revisions=facts(v3=(4, 4))))
    shadow = decision.plan.get("v4")
    assert shadow is not None
    assert (shadow.model_uri, shadow.shadow_model_uri) == (V3, V4)
    assert shadow.model_version == "3"
    assert decision.plan.mirror is not None
    assert (decision.plan.mirror.revision, decision.plan.mirror.percent) == ("v4", 10)


def test_shadow_query_names_the_shadow_revision() -> None:
    current = ModelDeploymentStatus.model_validate({**STABLE_V3, "canaryRevision": "v4"})
    assert shadow_query(spec(SHADOW), current) == MetricsQuery("v4", SHADOW_WINDOW)
    assert shadow_query(spec(CANARY), current) is None
    assert shadow_query(spec(SHADOW), ModelDeploymentStatus()) is None
