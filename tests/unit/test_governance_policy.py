"""Promotion policy files: parsed into typed gates, or refused naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from maestro.governance.policy import (
    FairnessGate,
    LatencyGate,
    MetricGate,
    PolicyError,
    SignatureGate,
    load_policy,
    parse_policy,
)

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[2] / "governance" / "policy.example.yaml"

HEAD = (
    "apiVersion: mlops.maestro.dev/v1alpha1\nkind: PromotionPolicy\n"
    "metadata: {name: p, version: '2'}\n"
)


def test_the_shipped_example_parses() -> None:
    loaded = load_policy(EXAMPLE)
    kinds = [type(g) for g in loaded.policy.spec.gates]
    assert kinds == [SignatureGate, MetricGate, LatencyGate]
    assert loaded.reference["version"] == "1" and len(loaded.reference["sha256"]) == 64


def test_every_gate_type() -> None:
    text = HEAD + (
        "spec:\n  dataset: {uri: 'sklearn://iris'}\n  gates:\n"
        "    - {type: metric, metric: f1, minDelta: 0.01}\n"
        "    - {type: latency, p95Ms: 5}\n"
        "    - {type: fairness, column: sex, maxGap: 0.05}\n"
        "    - {type: signature}\n"
        "  approval: {distinctApprover: true}\n"
    )
    policy = parse_policy(text.encode(), "p.yaml").policy
    metric, latency, fairness, _ = policy.spec.gates
    assert isinstance(metric, MetricGate) and metric.min_delta == 0.01
    assert isinstance(latency, LatencyGate) and latency.requests == 200
    assert isinstance(fairness, FairnessGate) and fairness.metric == "accuracy"
    assert policy.spec.approval.distinct_approver


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{{{", "is not valid YAML"),
        ("- a list", "must be a mapping"),
        (HEAD + "spec: {gates: []}\n", "spec.gates: List should have at least 1 item"),
        (HEAD + "spec: {gates: [{type: speed}]}\n", "spec.gates.0"),
        (HEAD + "spec: {gates: [{type: metric, metric: auc}]}\n", "spec.gates.0.metric.metric"),
        (HEAD + "spec: {gates: [{type: latency, p95Ms: 0}]}\n", "p95Ms"),
        (HEAD + "spec: {gates: [{type: metric, metric: f1}]}\n", "spec.dataset is required"),
        (HEAD + "spec: {gates: [{type: signature}], extra: 1}\n", "spec.extra"),
    ],
    ids=[
        "yaml",
        "list",
        "no-gates",
        "unknown-gate",
        "unknown-metric",
        "zero-budget",
        "no-data",
        "extra",
    ],
)
def test_bad_policies_name_the_problem(text: str, says: str) -> None:
    with pytest.raises(PolicyError, match=r"p\.yaml") as err:
        parse_policy(text.encode(), "p.yaml")
    assert says in str(err.value), str(err.value)


def test_a_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy(tmp_path / "nope.yaml")
