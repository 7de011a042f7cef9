"""Start checks of ABTest, reference checks of DriftCheck, and the status plan, table-driven with a
fake clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from maestro.operators.abtest.decide import DeploymentView, Inputs
from maestro.operators.abtest.decide import decide as decide_abtest
from maestro.operators.api.abtest import ABTestSpec, ABTestStatus
from maestro.operators.api.common import Reason
from maestro.operators.api.trainingrun import TrainingRunSpec
from maestro.operators.core.status import plan_status
from maestro.operators.core.verdict import Verdict, invalid_spec

pytestmark = pytest.mark.unit

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 1, 2, tzinfo=UTC)

ABTEST = ABTestSpec.model_validate(
    {"deployment": "iris", "challenger": {"model": {"uri": "models:/iris/2"}}, "metric": "ok"}
)


def abtest_verdict(md: DeploymentView | None, champion_uri: str | None = None) -> Verdict:
    inputs = Inputs(
        name="t",
        uid="u-1",
        spec=ABTEST,
        status=ABTestStatus(),
        now=T0,
        deployment=md,
        challenger_uri="models:/iris/2",
        champion_spec_uri=champion_uri,
    )
    return decide_abtest(inputs).verdict


SERVING = DeploymentView(
    phase="Available", stable_uri="models:/iris/1", rolling_out=False, alias_uri=True
)


@pytest.mark.parametrize(
    ("md", "champion_uri", "ready", "reason"),
    [
        pytest.param(None, None, False, Reason.DEPLOYMENT_NOT_FOUND, id="deployment-missing"),
        pytest.param(
            SERVING,
            "models:/iris/2",
            False,
            Reason.CHALLENGER_SAME_AS_CHAMPION,
            id="challenger-is-champion",
        ),
        pytest.param(
            DeploymentView("Progressing", "models:/iris/1", True, True),
            "models:/iris@champion",
            False,
            Reason.ROLLOUT_IN_PROGRESS,
            id="rollout-in-flight",
        ),
        pytest.param(SERVING, "models:/iris@champion", None, Reason.STARTING, id="valid-starts"),
    ],
)
def test_decide_abtest(
    md: DeploymentView | None, champion_uri: str | None, ready: bool | None, reason: Reason
) -> None:
    verdict = abtest_verdict(md, champion_uri)
    assert (verdict.ready, verdict.reason) == (ready, reason)
    assert verdict.phase == ("Running" if reason == Reason.STARTING else "Pending")


def test_invalid_spec_names_the_field_and_fails() -> None:
    with pytest.raises(ValidationError) as err:
        TrainingRunSpec.model_validate({"framework": "SKLearn", "params": {"a": [1, 2]}})
    verdict = invalid_spec("TrainingRun", err.value)
    assert (verdict.ready, verdict.reason, verdict.phase) == (False, Reason.INVALID_SPEC, "Failed")
    assert "spec.params.a" in verdict.message


ACCEPTED = Verdict(
    ready=True, reason=Reason.ACCEPTED, message="ABTest spec accepted.", phase="Pending"
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_first_plan_writes_everything_and_is_a_transition() -> None:
    plan = plan_status(ABTestStatus, None, ACCEPTED, generation=1, clock=Clock(T0))
    assert plan.patch == {
        "observedGeneration": 1,
        "phase": "Pending",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Accepted",
                "message": "ABTest spec accepted.",
                "lastTransitionTime": "2024-01-01T00:00:00Z",
                "observedGeneration": 1,
            }
        ],
    }
    assert plan.transition is not None and plan.transition.reason == "Accepted"


def test_settled_status_plans_nothing() -> None:
    first = plan_status(ABTestStatus, None, ACCEPTED, generation=1, clock=Clock(T0))
    again = plan_status(ABTestStatus, first.patch, ACCEPTED, generation=1, clock=Clock(T1))
    assert again.empty
    assert again.transition is None


def test_new_generation_updates_only_what_changed() -> None:
    stored = plan_status(ABTestStatus, None, ACCEPTED, generation=1, clock=Clock(T0))
    stored_status = {**stored.patch, "pValue": 0.2}  # a field another controller owns
    plan = plan_status(ABTestStatus, stored_status, ACCEPTED, generation=2, clock=Clock(T1))
    assert set(plan.patch) == {"observedGeneration", "conditions"}
    assert plan.patch["conditions"][0]["lastTransitionTime"] == "2024-01-01T00:00:00Z"
    assert plan.transition is None


def test_flip_is_a_transition_with_new_time() -> None:
    stored = plan_status(ABTestStatus, None, ACCEPTED, generation=1, clock=Clock(T0))
    missing = abtest_verdict(None)
    plan = plan_status(ABTestStatus, stored.patch, missing, generation=1, clock=Clock(T1))
    assert plan.transition is not None
    assert plan.transition.reason == "DeploymentNotFound"
    assert plan.patch["conditions"][0]["lastTransitionTime"] == "2024-01-02T00:00:00Z"
    assert "phase" not in plan.patch  # still Pending


def test_unreadable_status_is_replaced() -> None:
    plan = plan_status(
        ABTestStatus, {"conditions": "garbage"}, ACCEPTED, generation=1, clock=Clock(T0)
    )
    assert plan.patch["conditions"][0]["reason"] == "Accepted"
