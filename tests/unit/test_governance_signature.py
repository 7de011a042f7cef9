"""Signature compatibility: what callers of the deployed model would break on."""

from __future__ import annotations

from typing import Any

import pytest

from maestro.governance.signature import incompatibilities, parse_inputs

pytestmark = pytest.mark.unit


def col(name: str, type_: str = "double", required: bool = True) -> dict[str, Any]:
    return {"name": name, "type": type_, "required": required}


DEPLOYED = [col("age", "long"), col("income")]

CASES = [
    ("same", DEPLOYED, []),
    ("reordered", [col("income"), col("age", "long")], []),
    ("widened long to double", [col("age", "double"), col("income")], []),
    ("removed", [col("age", "long")], ["input 'income' (double) was removed"]),
    (
        "retyped",
        [col("age", "string"), col("income")],
        ["input 'age' changed type from long to string"],
    ),
    (
        "narrowed",
        [col("age", "integer"), col("income")],
        ["input 'age' changed type from long to integer"],
    ),
    ("new optional", [*DEPLOYED, col("zip", "string", required=False)], []),
    (
        "new required",
        [*DEPLOYED, col("zip", "string")],
        ["input 'zip' (string) is new and required"],
    ),
    (
        "no signature any more",
        [],
        ["the candidate has no input signature; the deployed model has one"],
    ),
]


@pytest.mark.parametrize(
    ("candidate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_incompatibilities(candidate: list[dict[str, Any]], expected: list[str]) -> None:
    assert incompatibilities(DEPLOYED, candidate) == expected


def test_a_deployed_model_without_signature_promises_nothing() -> None:
    assert incompatibilities([], [col("x")]) == []


def test_tensor_specs_compare_dtype_and_shape() -> None:
    def tensor(shape: list[int]) -> list[dict[str, Any]]:
        return [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": shape}}]

    assert incompatibilities(tensor([-1, 4]), tensor([-1, 4])) == []
    assert incompatibilities(tensor([-1, 4]), tensor([-1, 5])) == [
        "input '#0' changed type from tensor(float32, shape=[-1, 4])"
        " to tensor(float32, shape=[-1, 5])"
    ]


def test_parse_inputs_reads_mlflows_json_form() -> None:
    assert parse_inputs('[{"type": "double", "name": "x", "required": true}]') == [col("x")]
    assert parse_inputs(None) == []
