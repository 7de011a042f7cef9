"""ModelDeployment decisions of the BlueGreen strategy, with a fixed clock."""

from __future__ import annotations

import pytest

from maestro.operators.api.common import Reason
from maestro.operators.modeldeployment.decide import Role
from tests.unit.modeldeployment_cases import (
    BLUE_GREEN,
    BLUE_GREEN_MANUAL,
    BLUE_GREEN_NO_DELAY,
    STABLE_V3,
    V3,
    V4,
    Case,
    Expect,
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
    # --- BlueGreen --------------------------------------------------------------------
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
    # --- progress deadline ------------------------------------------------------------
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
]


@pytest.mark.parametrize(("case", "expect"), CASES)
def test_transition(case: Case, expect: Expect) -> None:
    decision = run(case)
    assert observed(decision, expect) == wanted(expect), decision.verdict.message
