"""POST /feedback: an outcome reported for a request id (the x-request-id answered) or, in a
Sticky ABTest, for a user key. The fields are checked here (a malformed body gets 422 naming
the field); in an ABTest the outcome is also counted for the variant that answered
(serving.abtest), or as unmatched when the test did not sign the id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from maestro.serving.abtest import Variant, assign_user, variant_of_request
from maestro.serving.abtest_router import ABTestMetrics, Role
from maestro.serving.errors import InputError

FEEDBACK_FIELDS = ("request_id", "user_key", "outcome", "model")


@dataclass(frozen=True)
class Feedback:
    request_id: str | None
    user_key: str | None
    outcome: Any  # boolean, number or string
    model: str


def feedback_fields(body: Any, default: str) -> Feedback:
    if not isinstance(body, dict):
        raise InputError("body", "expected a JSON object {request_id | user_key, outcome}")
    for key in body:
        if key not in FEEDBACK_FIELDS:
            raise InputError(key, f"unknown field; expected {', '.join(FEEDBACK_FIELDS)}")
    rid, user = body.get("request_id"), body.get("user_key")
    if rid is None and user is None:
        raise InputError("request_id", "required non-empty string (the x-request-id answered)")
    for name, value in (("request_id", rid), ("user_key", user)):
        if value is not None and (not isinstance(value, str) or not value):
            raise InputError(name, "expected a non-empty string")
    if "outcome" not in body:
        raise InputError("outcome", "required: a boolean, number or string")
    outcome = body["outcome"]
    if not isinstance(outcome, bool | int | float | str):
        raise InputError("outcome", f"expected a boolean, number or string, got {outcome!r}")
    model = body.get("model", default)
    if not isinstance(model, str):
        raise InputError("model", "expected a model name")
    return Feedback(rid, user, outcome, model)


def count_for_variant(role: Role, metrics: ABTestMetrics, fields: Feedback) -> Variant | None:
    """Count the outcome for the variant that answered; None (counted as unmatched) when the
    request id is not one the test signed. A user key is assigned again as the split did."""
    if isinstance(fields.outcome, str):
        raise InputError("outcome", "an ABTest counts booleans and numbers, not text")
    value = float(fields.outcome)
    if fields.request_id is not None:
        variant = variant_of_request(role.split, fields.request_id)
        if variant is None:
            metrics.unmatched_feedback("unknown_request_id")
            return None
    else:
        assert fields.user_key is not None
        if role.split.sticky_header is None:
            raise InputError("user_key", "only a Sticky split assigns by user; send request_id")
        variant = assign_user(role.split, fields.user_key)
    metrics.outcome(variant, value)
    return variant
