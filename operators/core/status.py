"""Turn a Verdict into the smallest status patch, or none at all. Pure.

Writing nothing when nothing changed matters: every status write is a watch event for
every controller and GitOps tool watching the object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from maestro.operators.api.common import (
    Condition,
    ConditionStatus,
    ConditionType,
    Reason,
    StatusBase,
)
from maestro.operators.core.conditions import Clock, find_condition, set_condition
from maestro.operators.core.verdict import Verdict


@dataclass(frozen=True)
class StatusPlan:
    """The status fields to merge-patch, and the Event to emit when Ready transitioned."""

    patch: dict[str, Any]
    transition: Condition | None

    @property
    def empty(self) -> bool:
        return not self.patch


def _dump(status: StatusBase) -> dict[str, Any]:
    return status.model_dump(by_alias=True, mode="json", exclude_none=True)


def _condition_status(ready: bool | None) -> ConditionStatus:
    if ready is None:
        return ConditionStatus.UNKNOWN
    return ConditionStatus.TRUE if ready else ConditionStatus.FALSE


def parse_status(model: type[StatusBase], raw: Mapping[str, Any] | None) -> StatusBase:
    """Parse what is stored; a status the model cannot read is treated as empty."""
    try:
        return model.model_validate(dict(raw or {}))
    except ValidationError:
        return model()


def plan_status(
    model: type[StatusBase],
    current_raw: Mapping[str, Any] | None,
    verdict: Verdict,
    *,
    generation: int | None,
    clock: Clock,
    extra: Mapping[str, Any] | None = None,
) -> StatusPlan:
    """`extra`: further status fields (wire names) the kind reports beside phase and Ready;
    a None value removes the field."""
    current = parse_status(model, current_raw)
    previous = find_condition(current.conditions, ConditionType.READY)
    conditions = set_condition(
        _synced_again(current.conditions, generation, clock),
        type_=ConditionType.READY,
        status=_condition_status(verdict.ready),
        reason=verdict.reason,
        message=verdict.message,
        generation=generation,
        clock=clock,
    )
    before = _dump(current)
    after = {
        **before,
        "observedGeneration": generation,
        "phase": verdict.phase,
        "conditions": [
            c.model_dump(by_alias=True, mode="json", exclude_none=True) for c in conditions
        ],
    }
    if generation is None:
        del after["observedGeneration"]
    for key, value in (extra or {}).items():
        if value is None:
            after.pop(key, None)
        else:
            after[key] = value
    # Round-trip through the model so the patch is exactly what the CRD schema accepts.
    after = _dump(model.model_validate(after))
    patch: dict[str, Any] = {key: value for key, value in after.items() if before.get(key) != value}
    # A merge patch removes a field by setting it to null.
    patch.update({key: None for key in before.keys() - after.keys()})
    ready = find_condition(conditions, ConditionType.READY)
    transitioned = previous is None or (
        ready is not None and (previous.status, previous.reason) != (ready.status, ready.reason)
    )
    return StatusPlan(patch=patch, transition=ready if transitioned else None)


def _synced_again(
    conditions: list[Condition], generation: int | None, clock: Clock
) -> list[Condition]:
    """A reconcile that reports succeeded: a Synced=False left by failed ones turns True
    (objects that never failed carry no Synced condition, so nothing is written for them)."""
    synced = find_condition(conditions, ConditionType.SYNCED)
    if synced is None or synced.status == ConditionStatus.TRUE:
        return conditions
    return set_condition(
        conditions,
        type_=ConditionType.SYNCED,
        status=ConditionStatus.TRUE,
        reason=Reason.RECONCILED,
        message="The last reconcile went through.",
        generation=generation,
        clock=clock,
    )


def plan_sync_failure(
    model: type[StatusBase],
    current_raw: Mapping[str, Any] | None,
    *,
    reason: Reason,
    message: str,
    generation: int | None,
    clock: Clock,
) -> dict[str, Any]:
    """The patch that sets Synced=False with why reconciles fail; empty if it says so.
    An object never reconciled yet also gets Ready=Unknown with the same reason, and the
    generation: its status then says what it is waiting for, not nothing."""
    current = parse_status(model, current_raw)
    conditions = list(current.conditions)
    extra: dict[str, Any] = {}
    if find_condition(conditions, ConditionType.READY) is None:
        conditions = set_condition(
            conditions,
            type_=ConditionType.READY,
            status=ConditionStatus.UNKNOWN,
            reason=reason,
            message=message,
            generation=generation,
            clock=clock,
        )
        if generation is not None:
            extra["observedGeneration"] = generation
    conditions = set_condition(
        conditions,
        type_=ConditionType.SYNCED,
        status=ConditionStatus.FALSE,
        reason=reason,
        message=message,
        generation=generation,
        clock=clock,
    )
    if conditions == current.conditions:
        return {}
    dumped = [c.model_dump(by_alias=True, mode="json", exclude_none=True) for c in conditions]
    return {**extra, "conditions": dumped}
