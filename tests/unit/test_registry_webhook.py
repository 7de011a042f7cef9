"""core.registry_webhook: which deliveries are authentic, and which model they are about."""

from __future__ import annotations

import json

import pytest

from maestro.operators.core.registry_webhook import changed_model, signature, verify

pytestmark = pytest.mark.unit

SECRET = "s3cret"
NOW = 1_800_000_000
BODY = json.dumps(
    {
        "entity": "model_version_alias",
        "action": "created",
        "timestamp": "2026-11-26T00:39:55+00:00",
        "data": {"name": "iris", "alias": "champion", "version": "4"},
    }
).encode()


def headers(body: bytes = BODY, at: int = NOW, secret: str = SECRET) -> dict[str, str]:
    return {
        "X-MLflow-Delivery-Id": "d-1",
        "X-MLflow-Timestamp": str(at),
        "X-MLflow-Signature": signature(secret, "d-1", str(at), body),
    }


def test_a_signed_fresh_delivery_is_accepted() -> None:
    assert verify(SECRET, headers(), BODY, now=NOW + 5) is None


@pytest.mark.parametrize(
    ("given", "body", "why"),
    [
        pytest.param({}, BODY, "unsigned delivery", id="unsigned"),
        pytest.param(headers(secret="other"), BODY, "bad signature", id="other-secret"),
        pytest.param(headers(), BODY + b" ", "bad signature", id="body-changed"),
        pytest.param(headers(at=NOW - 3600), BODY, "replay window", id="replayed"),
    ],
)
def test_other_deliveries_are_refused(given: dict[str, str], body: bytes, why: str) -> None:
    refused = verify(SECRET, given, body, now=NOW)
    assert refused is not None and why in refused


def test_without_a_secret_nothing_is_checked() -> None:
    assert verify(None, {}, BODY, now=NOW) is None


@pytest.mark.parametrize(
    ("event", "model"),
    [
        pytest.param(("model_version_alias", "created"), "iris", id="alias-set"),
        pytest.param(("model_version_alias", "deleted"), "iris", id="alias-deleted"),
        pytest.param(("model_version", "created"), "iris", id="version-created"),
        pytest.param(("model_version_tag", "set"), None, id="tag-ignored"),
        pytest.param(("prompt_alias", "created"), None, id="prompt-ignored"),
    ],
)
def test_changed_model(event: tuple[str, str], model: str | None) -> None:
    body = json.dumps({"entity": event[0], "action": event[1], "data": {"name": "iris"}})
    assert changed_model(body.encode()) == model


def test_changed_model_of_garbage_is_none() -> None:
    assert changed_model(b"not json") is None
    assert changed_model(b'{"entity": "model_version", "action": "created"}') is None
