"""ModelDeployment with spec.model.requireApproval: an alias moved without an approval is
held at AwaitingApproval, said once by a Warning Event, and the stable revision serves."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from maestro.operators.api.common import Reason
from maestro.operators.api.modeldeployment import ModelDeploymentStatus
from maestro.operators.core.approvals import Approved
from maestro.operators.modeldeployment.decide import Decision, Inputs, decide, messages
from tests.unit.modeldeployment_cases import STABLE_V3, at, spec

pytestmark = pytest.mark.unit

WAITING = messages.awaiting_approval(
    "iris", "champion", "4", Approved("3", "alice (kubernetes)", datetime(2026, 11, 26, tzinfo=UTC))
)


def decided(status: dict[str, Any]) -> Decision:
    return decide(
        Inputs(
            spec=spec(),
            status=ModelDeploymentStatus.model_validate(status),
            model_uri=None,
            now=at(0),
            model_error=WAITING,
            model_reason=Reason.AWAITING_APPROVAL,
        )
    )


def test_the_message_says_what_moved_what_was_approved_and_how_to_approve() -> None:
    assert WAITING == (
        "iris@champion was moved to v4 without an approval in the audit log (the last"
        " approved is v3, by alice (kubernetes) at 2026-11-26T00:00:00+00:00; MLflow does not"
        " record who moves an alias). Approve it with: maestro model promote iris --alias"
        " champion --version 4 --reason ..."
    )
    never = messages.awaiting_approval("iris", "champion", "1", None)
    assert "no version of it was ever approved" in never


def test_a_serving_deployment_keeps_its_stable_revision() -> None:
    serving = decided(STABLE_V3)
    assert (serving.verdict.ready, serving.verdict.reason) == (False, Reason.AWAITING_APPROVAL)
    assert serving.plan.names() == ["v3"] and not serving.status.get("canaryRevision")
    assert WAITING in serving.verdict.message and "v3 keeps serving" in serving.verdict.message


def test_nothing_is_deployed_for_a_first_unapproved_version() -> None:
    first = decided({})
    assert (first.verdict.phase, first.verdict.reason) == ("Pending", Reason.AWAITING_APPROVAL)
    assert first.plan.names() == [] and first.verdict.message == WAITING + "."
