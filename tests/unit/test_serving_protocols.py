"""Protocol bodies in and out, outputs split per request, ensemble and shadow arithmetic."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from maestro.serving import protocols
from maestro.serving.ensemble import agree, combine_mean, combine_vote
from maestro.serving.errors import InputError, MalformedBody
from maestro.serving.outputs import OutputError, normalise, to_mlflow, to_v2
from maestro.serving.schema import Column, Columns, InputSchema, Records, Rows, Tensor, to_array
from maestro.serving.uris import RegistryRef, parse_models_uri

pytestmark = pytest.mark.unit

SCHEMA = InputSchema(columns=(Column("x", "double"), Column("y", "double")))


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


# --- v2 ----------------------------------------------------------------------------------------


def test_v2_single_tensor_and_id() -> None:
    payload, request_id = protocols.parse_v2(
        {
            "id": "r1",
            "inputs": [{"name": "in", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3, 4]}],
        }
    )
    assert request_id == "r1"
    assert isinstance(payload, Tensor)
    np.testing.assert_array_equal(to_array(SCHEMA, payload), [[1, 2], [3, 4]])


def test_v2_one_input_per_column() -> None:
    payload, _ = protocols.parse_v2(
        {
            "inputs": [
                {"name": "y", "shape": [2, 1], "datatype": "INT64", "data": [[2], [4]]},
                {"name": "x", "shape": [2], "datatype": "FP64", "data": [1, 3]},
            ]
        }
    )
    assert isinstance(payload, Columns)
    np.testing.assert_array_equal(to_array(SCHEMA, payload), [[1, 2], [3, 4]])


def test_v2_numeric_columns_take_the_one_array_path_with_the_same_result() -> None:
    inputs = [
        {"name": "y", "shape": [3, 1], "datatype": "FP64", "data": [2, 4, 6]},
        {"name": "x", "shape": [3], "datatype": "FP64", "data": [1, 3, 5]},
    ]
    fast = protocols._v2_numeric_columns(inputs)
    assert fast is not None
    general, _ = protocols.parse_v2(
        {"inputs": [*inputs, {"name": "z", "shape": [3], "datatype": "INT64", "data": [0, 0, 0]}]}
    )
    expected = [[1, 2], [3, 4], [5, 6]]
    np.testing.assert_array_equal(to_array(SCHEMA, fast), expected)
    np.testing.assert_array_equal(to_array(SCHEMA, general), expected)  # mixed types: general


@pytest.mark.parametrize(
    "inputs",
    [
        [
            {"name": "x", "shape": [2], "datatype": "FP64", "data": [1, 2]},
            {"name": "y", "shape": [3], "datatype": "FP64", "data": [1, 2, 3]},
        ],
        [
            {"name": "x", "shape": [1], "datatype": "FP64", "data": [1]},
            {"name": "x", "shape": [1], "datatype": "FP64", "data": [2]},
        ],
        [
            {"name": "x", "shape": [1], "datatype": "FP64", "data": ["a"]},
            {"name": "y", "shape": [1], "datatype": "FP64", "data": [2]},
        ],
    ],
    ids=["unequal-rows", "duplicate-name", "bad-value"],
)
def test_v2_columns_the_fast_path_declines_get_the_general_paths_error(
    inputs: list[dict[str, Any]],
) -> None:
    assert protocols._v2_numeric_columns(inputs) is None
    with pytest.raises(InputError) as caught:
        to_array(SCHEMA, protocols.parse_v2({"inputs": inputs})[0])
    assert caught.value.field.startswith("inputs[")


@pytest.mark.parametrize(
    ("request_body", "field"),
    [
        ([], "body"),
        ({}, "inputs"),
        ({"inputs": [{"shape": [1], "datatype": "FP64", "data": [1]}]}, "inputs[0].name"),
        (
            {"inputs": [{"name": "a", "shape": "1", "datatype": "FP64", "data": [1]}]},
            "inputs[0].shape",
        ),
        (
            {"inputs": [{"name": "a", "shape": [1], "datatype": "DOUBLE", "data": [1]}]},
            "inputs[0].datatype",
        ),
        (
            {"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": ["x"]}]},
            "inputs[0].data",
        ),
        (
            {"inputs": [{"name": "a", "shape": [2, 2], "datatype": "FP64", "data": [1, 2]}]},
            "inputs[0].shape",
        ),
        ({"id": 3, "inputs": []}, "id"),
    ],
    ids=[
        "not-object",
        "no-inputs",
        "no-name",
        "bad-shape",
        "bad-datatype",
        "bad-data",
        "size",
        "id",
    ],
)
def test_v2_errors_name_the_field(request_body: Any, field: str) -> None:
    with pytest.raises(InputError) as caught:
        protocols.parse_v2(request_body)
    assert caught.value.field == field


def test_v2_response_shape() -> None:
    outputs = normalise(np.array([[0.1, 0.9], [0.8, 0.2]]), 2)
    response = protocols.v2_response("m", "3", "r1", outputs)
    assert response == {
        "model_name": "m",
        "model_version": "3",
        "id": "r1",
        "outputs": [
            {"name": "predict", "shape": [2, 2], "datatype": "FP64", "data": [0.1, 0.9, 0.8, 0.2]}
        ],
    }


# --- MLflow scoring and /predict -----------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        {"dataframe_split": {"columns": ["y", "x"], "data": [[2, 1], [4, 3]]}},
        {"dataframe_records": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]},
        {"instances": [[1, 2], [3, 4]]},
        {"instances": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]},
        {"inputs": {"x": [1, 3], "y": [2, 4]}},
        {"inputs": [[1, 2], [3, 4]], "params": {}},
    ],
    ids=["split", "records", "instances", "instances-objects", "inputs-columns", "inputs-rows"],
)
def test_invocations_formats(document: dict[str, Any]) -> None:
    payload = protocols.parse_invocations(body(document), "application/json")
    np.testing.assert_array_equal(to_array(SCHEMA, payload), [[1, 2], [3, 4]])


def test_invocations_csv() -> None:
    payload = protocols.parse_invocations(b"y,x\n2,1\n4,3\n", "text/csv")
    assert isinstance(payload, Rows)
    np.testing.assert_array_equal(to_array(SCHEMA, payload), [[1, 2], [3, 4]])


def test_invocations_errors() -> None:
    with pytest.raises(MalformedBody, match="malformed JSON"):
        protocols.parse_invocations(b"{nope", "application/json")
    with pytest.raises(InputError, match=r"^body: expected exactly one of"):
        protocols.parse_invocations(body({"instances": [], "inputs": []}), "application/json")
    with pytest.raises(InputError, match=r"^extra: unknown field"):
        protocols.parse_invocations(body({"instances": [[1, 2]], "extra": 1}), "application/json")
    with pytest.raises(InputError, match=r"^dataframe_split\.data: required"):
        protocols.parse_invocations(
            body({"dataframe_split": {"columns": ["x"]}}), "application/json"
        )


def test_predict_body() -> None:
    assert isinstance(protocols.parse_predict(body({"instances": [{"x": 1, "y": 2}]})), Records)
    with pytest.raises(InputError, match=r"^instances: required"):
        protocols.parse_predict(body({}))
    with pytest.raises(InputError, match=r"^inputs: unknown field"):
        protocols.parse_predict(body({"inputs": []}))


# --- outputs -----------------------------------------------------------------------------------


def test_outputs_split_per_request_and_render_per_protocol() -> None:
    frame = pd.DataFrame({"label": ["a", "b", "c"], "score": [0.1, 0.2, 0.3]})
    outputs = normalise(frame, 3)
    part = outputs.slice(1, 3)
    assert to_mlflow(part) == [{"label": "b", "score": 0.2}, {"label": "c", "score": 0.3}]
    assert [o["datatype"] for o in to_v2(part)] == ["BYTES", "FP64"]
    labels = normalise(pd.Series([1, 0, 1], name="y"), 3)
    assert labels.names == ("y",)
    assert to_mlflow(labels.slice(0, 1)) == [1]
    assert to_mlflow(normalise({"a": [1, 2], "b": [3, 4]}, 2)) == {"a": [1, 2], "b": [3, 4]}


def test_outputs_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(OutputError, match=r"returned 2 rows .* for 3 input rows"):
        normalise(np.array([1, 2]), 3)
    with pytest.raises(OutputError, match="a scalar"):
        normalise(np.float64(1.0), 1)


# --- ensemble and shadow -------------------------------------------------------------------


def test_vote_takes_the_majority_and_breaks_ties_by_member_order() -> None:
    votes = combine_vote([np.array([1, 0, 2]), np.array([1, 1, 3]), np.array([0, 1, 4])])
    np.testing.assert_array_equal(votes, [1, 1, 2])


def test_mean_averages_numbers() -> None:
    np.testing.assert_allclose(
        combine_mean([np.array([0.2, 1.0]), np.array([0.4, 0.0])]), [0.3, 0.5]
    )


@pytest.mark.parametrize(
    ("served", "shadow", "agreed"),
    [
        (np.array([1, 0]), np.array([1, 0]), True),
        (np.array([1, 0]), np.array([1, 1]), False),
        (np.array([0.5, 100.0]), np.array([0.5 + 1e-9, 100.00001]), True),
        (np.array([0.5]), np.array([0.5001]), False),
        (np.array(["a"]), np.array(["a"]), True),
        (np.array([1, 0]), np.array([1]), False),
    ],
    ids=["labels", "label-differs", "within-1e-6", "beyond-1e-6", "strings", "shape"],
)
def test_shadow_agreement(served: np.ndarray, shadow: np.ndarray, agreed: bool) -> None:
    assert agree(served, shadow) is agreed


# --- URIs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "ref"),
    [
        ("models:/iris/3", RegistryRef(name="iris", version="3")),
        ("models:/iris@champion", RegistryRef(name="iris", alias="champion")),
        ("models:/team/iris/latest", RegistryRef(name="team/iris", stage="latest")),
        ("models:/m-0123abcd", RegistryRef(name="", model_id="m-0123abcd")),
        ("runs:/abc/model", None),
        ("s3://bucket/model", None),
    ],
)
def test_models_uris(uri: str, ref: RegistryRef | None) -> None:
    assert parse_models_uri(uri) == ref


def test_bad_models_uri() -> None:
    with pytest.raises(ValueError, match="names no model"):
        parse_models_uri("models:/")
