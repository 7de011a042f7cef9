"""Property-based fuzzing of the spec models (issue 15, hostile input): the example of each
kind with any one field (at any depth) replaced by any JSON value, or removed, either
validates or is refused with pydantic's ValidationError naming the field; nothing else is
ever raised (no TypeError from an unhashable value, no crash in a validator)."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from maestro.operators.api.abtest import ABTestSpec
from maestro.operators.api.driftcheck import DriftCheckSpec
from maestro.operators.api.modeldeployment import ModelDeploymentSpec
from maestro.operators.api.trainingrun import TrainingRunSpec
from tests.unit.fuzzing import fuzz

pytestmark = pytest.mark.unit

EXAMPLES = Path(__file__).resolve().parents[2] / "manifests" / "examples"
MODELS: dict[str, type[BaseModel]] = {
    "modeldeployment.yaml": ModelDeploymentSpec,
    "trainingrun.yaml": TrainingRunSpec,
    "abtest.yaml": ABTestSpec,
    "driftcheck.yaml": DriftCheckSpec,
}
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


def spec_of(example: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all((EXAMPLES / example).read_text()) if d]
    spec: dict[str, Any] = docs[0]["spec"]
    return spec


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in the document: keys of objects and indexes of lists."""
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            found += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += paths(value, (*prefix, i))
    return found


@fuzz(300)
@given(data=st.data(), example=st.sampled_from(sorted(MODELS)))
def test_a_mutated_example_validates_or_is_refused_naming_the_field(
    data: st.DataObject, example: str
) -> None:
    spec = spec_of(example)
    assert MODELS[example].model_validate(spec)  # the example itself is valid
    where = data.draw(st.sampled_from(paths(spec)))
    mutated = copy.deepcopy(spec)
    parent = mutated
    for step in where[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[where[-1]]
    else:
        parent[where[-1]] = data.draw(JSON)
    try:
        MODELS[example].model_validate(mutated)
    except ValidationError as err:
        # Each error says where: a location, or a model-level rule whose message names it.
        assert all(e["loc"] or e["msg"] for e in err.errors()), err


@fuzz(200)
@given(model=st.sampled_from(sorted(MODELS)), document=JSON)
def test_any_document_validates_or_is_refused(model: str, document: Any) -> None:
    with contextlib.suppress(ValidationError):
        MODELS[model].model_validate(document)
