"""The references ABTest and DriftCheck specs make, as their handlers record them."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from maestro.operators.abtest.handlers import references as abtest_references
from maestro.operators.driftcheck.handlers import references as driftcheck_references

pytestmark = pytest.mark.unit


def spec(raw: dict[str, Any]) -> kopf.Spec:
    return kopf.Spec(kopf.Body(raw))


def test_an_abtest_names_its_deployment() -> None:
    body = {"spec": {"deployment": "iris", "challenger": {"model": {"uri": "models:/iris/2"}}}}
    assert abtest_references("ns", spec(body)) == {("ns", "ModelDeployment", "iris")}
    assert abtest_references("ns", spec({"spec": {}})) == set()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(
            {"deployment": "iris", "reference": {"uri": "s3://d/ref.parquet"}},
            {("ns", "ModelDeployment", "iris")},
            id="deployment-only",
        ),
        pytest.param(
            {
                "deployment": "iris",
                "reference": {"trainingRun": "train"},
                "onDrift": {"retrain": {"template": "retrain"}},
            },
            {
                ("ns", "ModelDeployment", "iris"),
                ("ns", "TrainingRun", "train"),
                ("ns", "TrainingRun", "retrain"),
            },
            id="reference-run-and-retrain-template",
        ),
    ],
)
def test_a_driftcheck_names_its_deployment_and_training_runs(
    raw: dict[str, Any], expected: set[tuple[str, str, str]]
) -> None:
    assert driftcheck_references("ns", spec({"spec": raw})) == expected
