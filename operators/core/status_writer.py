"""The one status writer: plan the smallest patch (core.status), write it to /status only
when something changed, and hand back the Ready transition for the Event."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from maestro.operators.api.common import Condition, ConditionStatus, StatusBase
from maestro.operators.core.conditions import Clock
from maestro.operators.core.events import one_line
from maestro.operators.core.failures import failure_reason
from maestro.operators.core.kube import Kube, plural_of
from maestro.operators.core.status import plan_status, plan_sync_failure
from maestro.operators.core.verdict import Verdict

log = logging.getLogger(__name__)

# Posts an Event about an object: (object, type, reason, message); events.emit in the
# operator, a recorder in tests.
EventPoster = Callable[[Mapping[str, Any], str, str, str], None]


def write_status(
    kube: Kube,
    obj: Mapping[str, Any],
    model: type[StatusBase],
    stored: Mapping[str, Any],
    verdict: Verdict,
    extra: Mapping[str, Any] | None,
    clock: Clock,
) -> tuple[dict[str, Any], Condition | None]:
    """Patch the object's status with what the verdict and `extra` change, nothing if
    nothing does; returns the status as now stored and the Ready transition, if any."""
    plan = plan_status(
        model,
        stored,
        verdict,
        generation=obj["metadata"].get("generation"),
        clock=clock,
        extra=extra,
    )
    if plan.empty:
        return dict(stored), None
    _patch_status(kube, obj, plan.patch)
    merged = {**stored, **plan.patch}
    return {k: v for k, v in merged.items() if v is not None}, plan.transition


def report(
    kube: Kube,
    obj: Mapping[str, Any],
    model: type[StatusBase],
    stored: Mapping[str, Any],
    verdict: Verdict,
    extra: Mapping[str, Any] | None,
    clock: Clock,
    post: EventPoster,
) -> dict[str, Any]:
    """write_status, then the Event of a Ready transition; returns the status as stored."""
    status, transition = write_status(kube, obj, model, stored, verdict, extra, clock)
    if transition is not None:
        # Unknown is work in progress, not a problem.
        type_ = "Warning" if transition.status == ConditionStatus.FALSE else "Normal"
        post(obj, type_, transition.reason, transition.message)
    return status


def report_failure(
    kube: Kube,
    obj: Mapping[str, Any],
    model: type[StatusBase],
    stored: Mapping[str, Any],
    err: BaseException,
    clock: Clock,
    post: EventPoster,
) -> None:
    """A reconcile failed (it is retried with back-off): a Warning Event, and Synced=False
    with which dependency failed, unless it already says so. Best effort: when the API
    server is what failed, the status cannot be written either."""
    reason = failure_reason(err)
    message = one_line(err)
    meta = obj["metadata"]
    try:
        post(obj, "Warning", reason, message)
        patch = plan_sync_failure(
            model,
            stored,
            reason=reason,
            message=message,
            generation=meta.get("generation"),
            clock=clock,
        )
        if patch:
            _patch_status(kube, obj, patch)
    except Exception as write_err:
        log.warning(
            "[%s/%s] failure not reported: %s", meta.get("namespace"), meta["name"], write_err
        )


def _patch_status(kube: Kube, obj: Mapping[str, Any], patch: Mapping[str, Any]) -> None:
    meta = obj["metadata"]
    kube.patch_status(
        obj["apiVersion"], plural_of(obj["kind"]), meta["namespace"], meta["name"], patch
    )
