"""Request payloads checked against a model signature with NumPy (maestro.serving.schema)."""

from __future__ import annotations

import numpy as np
import pytest

from maestro.serving.errors import InputError
from maestro.serving.schema import (
    Column,
    Columns,
    InputSchema,
    Records,
    Rows,
    Tensor,
    TensorInput,
    to_array,
)

pytestmark = pytest.mark.unit

NUMERIC = InputSchema(columns=(Column("a", "double"), Column("b", "double"), Column("n", "long")))
MIXED = InputSchema(
    columns=(
        Column("city", "string"),
        Column("size", "double"),
        Column("flag", "boolean"),
        Column("note", "string", required=False),
    )
)
IMAGE = InputSchema(tensor=TensorInput(np.dtype("float32"), (-1, 2, 2)))


def test_numeric_rows_become_one_float_array_in_signature_order() -> None:
    array = to_array(NUMERIC, Rows([[3, 1.5, 2], [4, 2.5, 7]], ["n", "a", "b"], "dataframe_split"))
    assert array.dtype == np.float64
    np.testing.assert_array_equal(array, [[1.5, 2, 3], [2.5, 7, 4]])


@pytest.mark.parametrize(
    "payload",
    [
        Records([{"b": 2, "a": 1, "n": 3}, {"a": 4, "b": 5, "n": 6, "extra": "ignored"}], "r"),
        Columns({"n": [3, 6], "a": [1, 4], "b": [2, 5]}, "inputs"),
        Tensor([[1, 2, 3], [4, 5, 6]], None, "instances"),
        Tensor(np.arange(1, 7, dtype=np.int64), [2, 3], "inputs[0]"),
        Columns({"a": np.array([1.0, 4.0]), "b": np.array([[2.0], [5.0]]), "n": [3, 6]}, "v2"),
    ],
    ids=["records", "columns", "positional-rows", "v2-tensor", "v2-per-column"],
)
def test_every_payload_form_gives_the_same_rows(payload: Rows) -> None:
    np.testing.assert_array_equal(to_array(NUMERIC, payload), [[1, 2, 3], [4, 5, 6]])


@pytest.mark.parametrize(
    ("payload", "field", "words"),
    [
        (Records([{"a": 1, "b": "x", "n": 1}], "dataframe_records"), "b", "expected double"),
        (Records([{"a": 1, "n": 1}], "dataframe_records"), "b", "missing required column"),
        (Rows([[1, 2]], ["a", "n"], "dataframe_split"), "b", "missing required column"),
        (Tensor([[1, 2]], None, "instances"), "instances", "does not fit the model's 3 columns"),
        (Tensor([[1, 2, 3], [1, 2]], None, "instances"), "instances[1]", "has 2 values"),
        (Tensor([1, 2, 3, 4], [2, 3], "inputs[0]"), "inputs[0].shape", "does not match"),
        (Records([{"a": 1, "b": 2, "n": 1.5}], "dataframe_records"), "n", "expected long"),
        (Records([{"a": True, "b": False, "n": True}], "r"), "a", "got boolean"),
        (Records([{"a": None, "b": 1, "n": 1}], "r"), "a", "missing value (null)"),
        (Columns({"a": [1, 2], "b": [1], "n": [1, 2]}, "inputs"), "b", "has 1 values"),
        (
            Records(["not an object"], "dataframe_records"),
            "dataframe_records[0]",
            "expected an object",
        ),
        (Tensor([], None, "instances"), "instances", "no rows"),
    ],
    ids=[
        "string-in-double",
        "missing-record-column",
        "missing-split-column",
        "too-few-columns",
        "ragged-row",
        "v2-shape-vs-data",
        "float-in-long",
        "booleans-in-numbers",
        "null-in-required",
        "column-lengths",
        "record-not-object",
        "empty",
    ],
)
def test_bad_input_names_the_field(payload: Rows, field: str, words: str) -> None:
    with pytest.raises(InputError) as caught:
        to_array(NUMERIC, payload)
    assert caught.value.field == field
    assert words in caught.value.message


def test_the_value_to_blame_is_found_among_numbers() -> None:
    # NumPy would turn this row into strings; the error still names the right column.
    with pytest.raises(InputError, match=r"^b: expected double, got string 'oops' \(row 1\)"):
        to_array(NUMERIC, Tensor([[1.0, 2.0, 3], [1.0, "oops", 3]], None, "instances"))


def test_mixed_signature_keeps_python_values_and_checks_each() -> None:
    array = to_array(MIXED, Records([{"city": "Oslo", "size": 2, "flag": True}], "r"))
    assert array.dtype == object
    assert array.tolist() == [["Oslo", 2, True, None]]
    with pytest.raises(InputError, match=r"^flag: expected boolean, got integer"):
        to_array(MIXED, Records([{"city": "Oslo", "size": 2, "flag": 1}], "r"))
    with pytest.raises(InputError, match=r"^city: expected string, got number"):
        to_array(MIXED, Rows([[1.5, 2.0, False, None]], None, "instances"))


def test_tensor_signature_checks_shape_and_dtype() -> None:
    array = to_array(IMAGE, Tensor([[[1, 2], [3, 4]]], None, "instances"))
    assert array.dtype == np.float32
    assert array.shape == (1, 2, 2)
    # One example without the batch dimension is accepted.
    assert to_array(IMAGE, Tensor([[1, 2], [3, 4]], None, "instances")).shape == (1, 2, 2)
    with pytest.raises(InputError, match=r"shape \[1, 2, 3\] does not fit .* \[-1, 2, 2\]"):
        to_array(IMAGE, Tensor([[[1, 2, 3], [3, 4, 5]]], None, "instances"))
    with pytest.raises(InputError, match="expected float32 values, got string"):
        to_array(IMAGE, Tensor([[["a", "b"], ["c", "d"]]], None, "instances"))


def test_without_signature_values_pass_as_numpy_makes_them() -> None:
    array = to_array(InputSchema(), Tensor([[1, 2], [3, 4]], None, "instances"))
    np.testing.assert_array_equal(array, [[1, 2], [3, 4]])
