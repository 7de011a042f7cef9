"""The serving pods' A/B split (serving.abtest): assignment, signed request ids, and who an
outcome reported later belongs to (serving.feedback)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from maestro.serving.abtest import (
    Split,
    Variant,
    assign_draw,
    assign_user,
    bucket,
    request_id,
    variant_of_request,
)
from maestro.serving.abtest_router import ABTestMetrics, ABTestRouter, Role, is_prediction
from maestro.serving.errors import InputError
from maestro.serving.feedback import count_for_variant, feedback_fields
from maestro.serving.predlog import PredictionLog

pytestmark = pytest.mark.unit

SPLIT = Split(name="t", key=b"uid-1", challenger_percent=30, sticky_header="x-user-id")


def test_sticky_assignment_is_stable_and_matches_the_share() -> None:
    users = [f"user-{i}" for i in range(20000)]
    first = [assign_user(SPLIT, u) for u in users]
    assert first == [assign_user(SPLIT, u) for u in users]
    share = sum(v is Variant.CHALLENGER for v in first) / len(users)
    assert abs(share - 0.30) < 0.015
    # Another test's key shuffles users differently.
    other = Split(name="t2", key=b"uid-2", challenger_percent=30)
    assert [bucket(other, u) for u in users[:50]] != [bucket(SPLIT, u) for u in users[:50]]


def test_random_assignment_follows_the_draw() -> None:
    assert assign_draw(SPLIT, 0.29) is Variant.CHALLENGER
    assert assign_draw(SPLIT, 0.30) is Variant.CHAMPION


def test_a_signed_request_id_names_its_variant_and_nothing_else_verifies() -> None:
    rid = request_id(SPLIT, Variant.CHALLENGER, "ab" * 16)
    assert variant_of_request(SPLIT, rid) is Variant.CHALLENGER
    assert variant_of_request(SPLIT, rid.replace("ab.x.", "ab.c.", 1)) is None  # tampered
    assert variant_of_request(Split("t", b"other", 30), rid) is None  # another test
    assert variant_of_request(SPLIT, "0123456789abcdef") is None  # not ours


def test_a_bad_split_is_refused() -> None:
    with pytest.raises(ValueError, match="0-100"):
        Split("t", b"k", 101)
    with pytest.raises(ValueError, match="key"):
        Split("t", b"", 10)


def metrics_of(registry: CollectorRegistry, name: str, variant: str) -> float:
    labels = {"deployment": "md", "abtest": "t", "test_id": SPLIT.test_id, "variant": variant}
    value = registry.get_sample_value(name, labels)
    return value or 0.0


def test_feedback_is_counted_for_the_variant_that_answered() -> None:
    registry = CollectorRegistry()
    metrics = ABTestMetrics(registry, "md", SPLIT)
    role = Role(SPLIT, Variant.CHAMPION)
    rid = request_id(SPLIT, Variant.CHALLENGER, "cd" * 16)
    fields = feedback_fields({"request_id": rid, "outcome": True}, "m")
    assert count_for_variant(role, metrics, fields) is Variant.CHALLENGER
    by_user = feedback_fields({"user_key": "u-1", "outcome": 2.5}, "m")
    expected = assign_user(SPLIT, "u-1")
    assert count_for_variant(role, metrics, by_user) is expected
    assert metrics_of(registry, "maestro_abtest_outcomes_total", "challenger") >= 1
    assert metrics_of(registry, "maestro_abtest_outcome_sum", expected.value) >= 2.5
    unknown = feedback_fields({"request_id": "made-up", "outcome": 1}, "m")
    assert count_for_variant(role, metrics, unknown) is None
    unmatched = registry.get_sample_value(
        "maestro_abtest_unmatched_feedback_total",
        {"deployment": "md", "abtest": "t", "test_id": "uid1", "reason": "unknown_request_id"},
    )
    assert unmatched == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"outcome": 1}, "request_id"),
        ({"request_id": "", "outcome": 1}, "request_id"),
        ({"request_id": "r"}, "outcome"),
        ({"request_id": "r", "outcome": [1]}, "outcome"),
        ({"request_id": "r", "outcome": 1, "extra": 1}, "extra"),
    ],
)
def test_malformed_feedback_names_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as err:
        feedback_fields(body, "m")
    assert err.value.field == field


def test_abtests_count_numbers_and_user_keys_only_where_they_mean_something() -> None:
    metrics = ABTestMetrics(CollectorRegistry(), "md", SPLIT)
    text = feedback_fields({"request_id": "r", "outcome": "yes"}, "m")
    with pytest.raises(InputError, match="outcome"):
        count_for_variant(Role(SPLIT, Variant.CHAMPION), metrics, text)
    random_split = Split("t", b"k", 50)
    by_user = feedback_fields({"user_key": "u", "outcome": 1}, "m")
    with pytest.raises(InputError, match="Sticky"):
        count_for_variant(Role(random_split, Variant.CHAMPION), metrics, by_user)


def test_only_predictions_are_split() -> None:
    assert is_prediction("POST", "/invocations")
    assert is_prediction("POST", "/v2/models/iris/infer")
    assert not is_prediction("GET", "/invocations")
    assert not is_prediction("POST", "/feedback")


def test_the_prediction_log_of_a_test_pod_names_its_variant(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    log = PredictionLog(path, sample=1.0, deployment="md", revision="ab-1", variant="challenger")
    log.record_feedback(request_id="r1", model="m", outcome=True)
    log.close()
    (line,) = [json.loads(text) for text in path.read_text().splitlines()]
    assert (line["revision"], line["variant"]) == ("ab-1", "challenger")


def test_a_binary_tensor_request_forwarded_to_the_challenger_keeps_its_header_both_ways() -> None:
    seen: list[httpx.Request] = []

    def challenger(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            content=b'{"outputs":[]}raw',
            headers={
                "content-type": "application/octet-stream",
                "inference-header-content-length": "14",
            },
        )

    role = Role(SPLIT, Variant.CHAMPION, peer_url="http://challenger")
    router = ABTestRouter(lambda *_: None, role, ABTestMetrics(CollectorRegistry(), "md", SPLIT))
    router.client = httpx.AsyncClient(transport=httpx.MockTransport(challenger))
    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "path": "/v2/models/m/infer",
        "headers": [(b"inference-header-content-length", b"2"), (b"x-other", b"no")],
    }
    asyncio.run(router.forward(scope, b"{}", "rid-1", send))
    assert seen[0].headers["inference-header-content-length"] == "2"
    assert "x-other" not in seen[0].headers
    headers = dict(sent[0]["headers"])
    assert headers[b"inference-header-content-length"] == b"14"
    assert sent[1]["body"] == b'{"outputs":[]}raw'
