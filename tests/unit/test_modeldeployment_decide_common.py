"""ModelDeployment decisions whatever the strategy: the first revision, a model that cannot be
resolved, the stable revision, progress deadlines, rollbacks not retried, names and units.
A fixed clock throughout."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from maestro.operators.api.common import Reason
from maestro.operators.api.crdgen import crd_for
from maestro.operators.api.modeldeployment import ModelDeployment
from maestro.operators.core.verdict import invalid_spec
from maestro.operators.modeldeployment.decide import (
    RevisionFacts,
    Role,
    concrete_uri,
    needs_resolution,
    parse_duration,
    registry_model,
    registry_version,
    revision_facts,
    revision_name,
    share,
)
from tests.unit.modeldeployment_cases import (
    CANARY,
    CANARY_AT_10,
    GOOD,
    MISSED,
    STABLE_V3,
    V3,
    V4,
    V5,
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
    # --- any strategy -----------------------------------------------------------------
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
    # --- progress deadline (default 10m) ----------------------------------------------
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
    assert observed(decision, expect) == wanted(expect), decision.verdict.message


def test_a_new_model_with_a_taken_version_number_gets_a_hash_revision() -> None:
    decision = run(Case(spec(), STABLE_V3, "models:/wine/3", revisions=facts(v3=(1, 1))))
    (candidate,) = [r for r in decision.plan.revisions if r.role == Role.PREVIEW]
    assert candidate.model_uri == "models:/wine/3"
    assert candidate.name == revision_name("models:/wine/3", {"v3": V3})
    assert candidate.name != "v3" and len(candidate.name) == 8


# --- the loop: decide -> status -> facts, as a handler would run it -------------------------


def test_a_first_revision_that_misses_the_deadline_fails_then_recovers() -> None:
    warnings: list[tuple[str, str, datetime]] = []
    trail, events, final = simulate(
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
    ready = ready_condition(final)
    assert (ready["status"], ready["reason"]) == ("True", "Available")


# --- spec.progressDeadline ------------------------------------------------------------------


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


# --- names and units ------------------------------------------------------------------------


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
        # A logged model id (MLflow 3), not a registered model: served as given.
        ("models:/iris", None, None, False),
        # Malformed models:/ URIs are served as given too; the serving pod reports them.
        ("models:/iris@", None, None, False),
        ("models:/iris@a/b", None, None, False),
        ("models:/", None, None, False),
        # A version names objects (v3): only ASCII digits are one.
        ("models:/iris/\u0663", "iris", None, True),
    ],
    ids=[
        "version",
        "alias",
        "stage",
        "latest",
        "run",
        "s3",
        "logged-model-id",
        "empty-alias",
        "alias-with-a-slash",
        "no-name",
        "non-ascii-digits",
    ],
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


def test_revision_facts_count_only_ready_pods_of_the_current_template() -> None:
    rolling = {"spec": {"replicas": 3}, "status": {"readyReplicas": 3, "updatedReplicas": 1}}
    assert revision_facts(rolling) == RevisionFacts(3, 1)
    fresh = {"spec": {"replicas": 2}, "status": {}}
    assert revision_facts(fresh) == RevisionFacts(2, 0)
