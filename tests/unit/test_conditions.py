"""The conditions helper keeps lastTransitionTime unless the status flips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from maestro.operators.api.common import Condition, ConditionStatus
from maestro.operators.core.conditions import find_condition, set_condition, utc_now

pytestmark = pytest.mark.unit

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return self.now


def ready(status: ConditionStatus, reason: str = "Accepted", message: str = "ok") -> Condition:
    return Condition(
        type="Ready",
        status=status,
        reason=reason,
        message=message,
        last_transition_time=T0,
        observed_generation=1,
    )


@pytest.mark.parametrize(
    ("previous", "status", "reason", "expected_time"),
    [
        pytest.param(None, ConditionStatus.TRUE, "Accepted", T1, id="new-condition"),
        pytest.param(ready(ConditionStatus.TRUE), ConditionStatus.TRUE, "Accepted", T0, id="same"),
        pytest.param(
            ready(ConditionStatus.FALSE, "DeploymentNotFound"),
            ConditionStatus.FALSE,
            "ChallengerSameAsChampion",
            T0,
            id="reason-change-is-not-a-transition",
        ),
        pytest.param(
            ready(ConditionStatus.FALSE, "DeploymentNotFound"),
            ConditionStatus.TRUE,
            "Accepted",
            T1,
            id="flip-false-to-true",
        ),
        pytest.param(
            ready(ConditionStatus.TRUE), ConditionStatus.UNKNOWN, "Accepted", T1, id="to-unknown"
        ),
    ],
)
def test_last_transition_time(
    previous: Condition | None, status: ConditionStatus, reason: str, expected_time: datetime
) -> None:
    clock = FakeClock(T1)
    conditions = set_condition(
        [previous] if previous else [],
        type_="Ready",
        status=status,
        reason=reason,
        message="m",
        generation=2,
        clock=clock,
    )
    updated = find_condition(conditions, "Ready")
    assert updated is not None
    assert updated.last_transition_time == expected_time
    assert (updated.status, updated.reason, updated.observed_generation) == (status, reason, 2)
    assert clock.calls == (1 if expected_time == T1 else 0)


def test_other_conditions_are_kept_in_place() -> None:
    other = ready(ConditionStatus.TRUE).model_copy(update={"type": "Progressing"})
    conditions = set_condition(
        [other, ready(ConditionStatus.TRUE)],
        type_="Ready",
        status=ConditionStatus.FALSE,
        reason="DeploymentNotFound",
        message="gone",
        generation=3,
        clock=FakeClock(T1),
    )
    assert [c.type for c in conditions] == ["Progressing", "Ready"]
    assert conditions[0] == other


def test_utc_now_has_second_precision() -> None:
    now = utc_now()
    assert now.microsecond == 0
    assert now.tzinfo is UTC
