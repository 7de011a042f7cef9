"""ModelDeployment decisions of the Rolling strategy, with a fixed clock."""

from __future__ import annotations

from datetime import datetime

import pytest

from maestro.operators.api.common import Reason
from maestro.operators.modeldeployment.decide import Role
from tests.unit.modeldeployment_cases import (
    GOOD,
    STABLE_V3,
    V4,
    Case,
    Expect,
    at,
    facts,
    iso,
    observed,
    ready_condition,
    run,
    simulate,
    spec,
    status,
    wanted,
)

pytestmark = pytest.mark.unit

CASES = [
    # --- Rolling ----------------------------------------------------------------------
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
    # --- progress deadline (default 10m) ----------------------------------------------
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
]


@pytest.mark.parametrize(("case", "expect"), CASES)
def test_transition(case: Case, expect: Expect) -> None:
    decision = run(case)
    assert observed(decision, expect) == wanted(expect), decision.verdict.message


# --- the loop: decide -> status -> facts, as a handler would run it -------------------------


def test_a_rollout_ready_just_before_the_deadline_is_promoted() -> None:
    warnings: list[tuple[str, str, datetime]] = []
    trail, events, final = simulate(
        spec(), GOOD, ticks=400, ready_after={"v4": 590}, warnings=warnings
    )
    assert trail == [("Progressing", 0), ("Available", None)]
    assert events == [Reason.ROLLOUT_STARTED, Reason.PROMOTED]
    assert warnings == []
    assert final["stableRevision"] == "v4" and "rolledBackRevision" not in final
    assert ready_condition(final)["lastTransitionTime"] < iso(600)
