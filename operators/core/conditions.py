"""Kubernetes-style conditions, kept the way cert-manager's SetCertificateCondition keeps them.

Pure: no kopf, no kubernetes; the clock is an argument so tests can pin time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from maestro.operators.api.common import Condition, ConditionStatus

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    # metav1.Time has second precision; sub-second values would never round-trip equal.
    return datetime.now(UTC).replace(microsecond=0)


def find_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def set_condition(
    conditions: Sequence[Condition],
    *,
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    clock: Clock,
) -> list[Condition]:
    """Return `conditions` with `type_` set; other conditions are kept in place.

    lastTransitionTime changes only when the status flips: a new reason or message for the
    same status is an update, not a transition, so "Ready for 3d" stays true across them.
    The clock is only read when a transition happens.
    """
    previous = find_condition(conditions, type_)
    if previous is not None and previous.status == status:
        transition_time = previous.last_transition_time
    else:
        transition_time = clock()
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition_time,
        observed_generation=generation,
    )
    if previous is None:
        return [*conditions, updated]
    return [updated if c.type == type_ else c for c in conditions]
