"""ModelDeployment: serving pods that say they cannot load the model. A first revision is
Failed with their reason at once (not at its progress deadline); a candidate is rolled back
at once, with every strategy, and not retried until the model moves."""

from __future__ import annotations

from typing import Any

import pytest

from maestro.operators.api.common import Reason
from maestro.operators.api.modeldeployment import ModelDeploymentStatus
from maestro.operators.core.registry import checks_servable
from maestro.operators.modeldeployment.decide import (
    Decision,
    Inputs,
    RevisionFacts,
    decide,
    load_failure,
)
from tests.unit.modeldeployment_cases import (
    BLUE_GREEN,
    CANARY,
    SHADOW,
    STABLE_V3,
    V3,
    V4,
    at,
    spec,
)

pytestmark = pytest.mark.unit

CANNOT_LOAD = "LoadError: models:/iris/4: RESOURCE_DOES_NOT_EXIST: no such model version"


def run(
    status: dict[str, Any],
    model_uri: str,
    revisions: dict[str, tuple[int, int]],
    failures: dict[str, str],
    strategy: dict[str, Any] | None = None,
    seconds: float = 0,
) -> Decision:
    return decide(
        Inputs(
            spec=spec(strategy),
            status=ModelDeploymentStatus.model_validate(status),
            model_uri=model_uri,
            now=at(seconds),
            revisions={name: RevisionFacts(*counts) for name, counts in revisions.items()},
            load_failures=failures,
        )
    )


def test_a_first_revision_whose_pods_cannot_load_fails_at_once_and_recovers() -> None:
    first = run({}, V3, {}, {})
    assert first.verdict.reason == Reason.DEPLOYING
    status = {**first.status, "phase": first.verdict.phase}
    # Ten seconds in, long before the ten-minute progress deadline, a pod says why.
    failing = run(status, V3, {"v3": (1, 0)}, {"v3": CANNOT_LOAD}, seconds=10)
    verdict = failing.verdict
    assert (verdict.phase, verdict.reason, verdict.ready) == (
        "Failed",
        Reason.MODEL_LOAD_FAILED,
        False,
    )
    assert CANNOT_LOAD in verdict.message and "v3" in verdict.message
    assert failing.plan.names() == ["v3"]  # kept: its pods retry with back-off
    assert failing.status["loadFailure"] == {"revision": "v3", "message": CANNOT_LOAD}
    assert failing.requeue_after is not None
    status = {**failing.status, "phase": verdict.phase}
    recovered = run(status, V3, {"v3": (1, 1)}, {}, seconds=60)
    assert (recovered.verdict.phase, recovered.verdict.reason) == ("Available", Reason.AVAILABLE)
    assert recovered.status["loadFailure"] is None


@pytest.mark.parametrize(
    "strategy",
    [None, BLUE_GREEN, CANARY, SHADOW],
    ids=["rolling", "bluegreen", "canary", "shadow"],
)
def test_a_candidate_whose_pods_cannot_load_is_rolled_back_at_once(
    strategy: dict[str, Any] | None,
) -> None:
    started = run(STABLE_V3, V4, {"v3": (1, 1)}, {}, strategy)
    assert started.status["canaryRevision"] == "v4"
    status = {**started.status, "phase": started.verdict.phase}
    failed = run(status, V4, {"v3": (1, 1), "v4": (1, 0)}, {"v4": CANNOT_LOAD}, strategy, 5)
    verdict = failed.verdict
    assert (verdict.phase, verdict.reason, verdict.ready) == (
        "RolledBack",
        Reason.MODEL_LOAD_FAILED,
        False,
    )
    assert CANNOT_LOAD in verdict.message and "v3 serves all traffic" in verdict.message
    assert failed.plan.names() == ["v3"] and dict(failed.plan.weights) == {"v3": 100}
    assert [e.reason for e in failed.events] == [Reason.ROLLED_BACK]
    assert failed.status["rolledBackRevision"] == "v4"
    assert failed.status["loadFailure"] == {"revision": "v4", "message": CANNOT_LOAD}
    # Not retried while the model still points at it, whatever its pods say now.
    status = {**failed.status, "phase": verdict.phase}
    again = run(status, V4, {"v3": (1, 1)}, {}, strategy, 60)
    assert (again.verdict.phase, again.verdict.reason) == ("RolledBack", Reason.MODEL_LOAD_FAILED)
    assert again.plan.names() == ["v3"] and again.events == ()


def test_a_load_failure_of_another_revision_does_not_stop_a_rollout() -> None:
    started = run(STABLE_V3, V4, {"v3": (1, 1)}, {})
    status = {**started.status, "phase": started.verdict.phase}
    going = run(status, V4, {"v3": (1, 1), "v4": (1, 0)}, {"v9": CANNOT_LOAD}, seconds=5)
    assert going.verdict.reason == Reason.DEPLOYING
    assert "v4" in going.plan.names()


def pod(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"status": {"containerStatuses": list(containers)}}


def ended(code: int, message: str = "") -> dict[str, Any]:
    return {"terminated": {"exitCode": code, "message": message}}


@pytest.mark.parametrize(
    ("container", "expected"),
    [
        pytest.param({"ready": False, "state": ended(1, "boom\n")}, "boom", id="terminated"),
        pytest.param(
            {
                "ready": False,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": ended(1, "boom"),
            },
            "boom",
            id="crash-looping",
        ),
        pytest.param({"ready": True, "lastState": ended(1, "boom")}, None, id="ready-again"),
        pytest.param({"ready": False, "state": ended(0, "done")}, None, id="exited-0"),
        pytest.param({"ready": False, "state": ended(137)}, None, id="no-message"),
        pytest.param({"ready": False, "state": {"running": {}}}, None, id="starting"),
    ],
)
def test_load_failure_of_a_pod(container: dict[str, Any], expected: str | None) -> None:
    assert load_failure(pod(container)) == expected


@pytest.mark.parametrize(
    ("reason", "fragment"),
    [
        pytest.param(Reason.MODEL_NOT_FOUND, "cannot be resolved", id="not-found"),
        pytest.param(Reason.MODEL_NOT_SERVABLE, "cannot be served", id="not-servable"),
    ],
)
def test_a_model_that_cannot_be_rolled_out_reaches_no_pod(reason: Reason, fragment: str) -> None:
    def decided(status: dict[str, Any]) -> Decision:
        return decide(
            Inputs(
                spec=spec(),
                status=ModelDeploymentStatus.model_validate(status),
                model_uri=None,
                now=at(0),
                model_error="no python_function flavor",
                model_reason=reason,
            )
        )

    first = decided({})
    assert (first.verdict.phase, first.verdict.reason) == ("Pending", reason)
    assert fragment in first.verdict.message and first.plan.names() == []
    serving = decided(STABLE_V3)
    assert (serving.verdict.phase, serving.verdict.reason) == ("Degraded", reason)
    assert serving.plan.names() == ["v3"] and "v3 keeps serving" in serving.verdict.message


@pytest.mark.parametrize(
    ("uri", "checked"),
    [
        pytest.param("models:/iris/3", True, id="version"),
        pytest.param("runs:/abc/model", True, id="run"),
        pytest.param("models:/iris@champion", False, id="alias-is-resolved-first"),
        pytest.param("s3://bucket/model", False, id="s3-read-by-pods"),
        pytest.param("file:///models/iris", False, id="file-read-by-pods"),
    ],
)
def test_which_uris_the_operator_inspects(uri: str, checked: bool) -> None:
    assert checks_servable(uri) is checked
