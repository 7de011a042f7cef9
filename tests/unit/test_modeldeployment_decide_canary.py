"""ModelDeployment decisions of the Canary strategy, with a fixed clock: steps, analyses,
promotion and rollback."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from maestro.operators.api.common import Reason
from maestro.operators.api.modeldeployment import CanaryAnalysis, ModelDeploymentStatus
from maestro.operators.modeldeployment.decide import MetricsQuery, Role, canary_query, judge
from tests.unit.modeldeployment_cases import (
    CANARY,
    CANARY_AT_10,
    CANARY_TWO_STEPS,
    ERRORS,
    FEW,
    GOOD,
    MISSED,
    NEVER,
    SLOW,
    STABLE_V3,
    V3,
    V4,
    V5,
    Case,
    Expect,
    Figures,
    at,
    facts,
    iso,
    observed,
    passed_at,
    ready_condition,
    run,
    simulate,
    spec,
    status,
    wanted,
)

pytestmark = pytest.mark.unit

CASES = [
    # --- Canary -----------------------------------------------------------------------
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
    # --- progress deadline (default 10m) ----------------------------------------------
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
]


@pytest.mark.parametrize(("case", "expect"), CASES)
def test_transition(case: Case, expect: Expect) -> None:
    decision = run(case)
    assert observed(decision, expect) == wanted(expect), decision.verdict.message


# --- the loop: decide -> status -> facts, as a handler would run it -------------------------


def test_a_healthy_canary_walks_every_step_to_promotion() -> None:
    trail, events, final = simulate(spec(CANARY), GOOD)
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
    trail, events, final = simulate(spec(CANARY), ERRORS)
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


def test_a_canary_that_never_gets_ready_is_rolled_back_at_the_deadline() -> None:
    warnings: list[tuple[str, str, datetime]] = []
    trail, events, final = simulate(
        spec(CANARY), GOOD, ticks=400, ready_after={"v4": NEVER}, warnings=warnings
    )
    assert trail == [("Progressing", 0), ("RolledBack", None)]
    assert events == [Reason.ROLLOUT_STARTED, Reason.ROLLED_BACK]
    assert final["stableRevision"] == "v3" and "canaryRevision" not in final
    assert final["rolledBackRevision"] == "v4" and "progressStartedAt" not in final
    assert final["missedDeadline"] == MISSED
    ready = ready_condition(final)
    assert (ready["status"], ready["reason"]) == ("False", "ProgressDeadlineExceeded")
    # Not a poll later: requeue_after woke the loop exactly at the deadline.
    assert ready["lastTransitionTime"] == iso(600)
    assert [(reason, when) for reason, _, when in warnings] == [
        ("ProgressDeadlineExceeded", at(600)),
        ("RolledBack", at(600)),
    ]
    assert all("v4: 0 of 1 replicas ready" in message for _, message, _ in warnings)


# --- analysis -------------------------------------------------------------------------------


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
