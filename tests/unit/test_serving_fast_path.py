"""The request path's fast pieces agree with the general ones: JSON through orjson with
json's semantics (serving.json_codec), v2 columns kept stacked (serving.stacked), and the
prediction routes matched before FastAPI (serving.prediction_routes)."""

from __future__ import annotations

import enum
import json
import math

import numpy as np
import pytest

from maestro.serving import json_codec, protocols
from maestro.serving.errors import InputError
from maestro.serving.prediction_routes import Route, match
from maestro.serving.schema import Column, Columns, InputSchema, to_array

pytestmark = pytest.mark.unit


# --- json_codec --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '{"a": [1.5, -2, "x", null, true]}',
        '{"a": NaN, "b": Infinity}',  # json's extensions, which orjson refuses
        '{"s": "\\ud800"}',  # a lone surrogate
    ],
)
def test_loads_parses_whatever_json_parses_to_the_same_value(text: str) -> None:
    got, want = json_codec.loads(text.encode()), json.loads(text)
    assert json.dumps(got, sort_keys=True) == json.dumps(want, sort_keys=True)


def test_integers_beyond_64_bits_become_the_nearest_float() -> None:
    # orjson's reading; every numeric model input is float64 in the end.
    assert json_codec.loads(b"[123456789012345678901234567890]") == [1.2345678901234568e29]


@pytest.mark.parametrize("body", [b"{", b"[1,]", b"\xff\xfe"])
def test_loads_refuses_what_json_refuses_with_its_error(body: bytes) -> None:
    with pytest.raises((ValueError, UnicodeDecodeError)) as ours:
        json_codec.loads(body)
    with pytest.raises((ValueError, UnicodeDecodeError)) as theirs:
        json.loads(body)
    assert str(ours.value) == str(theirs.value)


class Level(enum.IntEnum):
    HIGH = 3


def test_dumps_is_compact_json_and_falls_back_for_types_orjson_refuses() -> None:
    assert json_codec.dumps({"a": [1, 2.5, None]}) == b'{"a":[1,2.5,null]}'
    assert json.loads(json_codec.dumps({"level": Level.HIGH})) == {"level": 3}
    assert json_codec.dumps([math.nan]) == b"[null]"


# --- stacked v2 columns ------------------------------------------------------------------------

SCHEMA = InputSchema(
    columns=(Column("x", "double"), Column("y", "double"), Column("n", "long", required=False))
)


def v2_inputs(order: list[str], rows: int = 2) -> list[dict[str, object]]:
    values = {"x": [1.0, 3.0], "y": [2.0, 4.0], "n": [5, 6]}
    return [
        {"name": name, "shape": [rows, 1], "datatype": "FP64", "data": values[name][:rows]}
        for name in order
    ]


@pytest.mark.parametrize("order", [["x", "y", "n"], ["n", "y", "x"]])
def test_stacked_columns_give_the_general_paths_array_in_any_order(order: list[str]) -> None:
    fast = protocols._v2_numeric_columns(v2_inputs(order))
    assert isinstance(fast, Columns) and fast.stacked is not None
    general = Columns({k: list(v) for k, v in fast.data.items()}, "inputs")
    np.testing.assert_array_equal(to_array(SCHEMA, fast), to_array(SCHEMA, general))
    np.testing.assert_array_equal(to_array(SCHEMA, fast), [[1, 2, 5], [3, 4, 6]])


def test_a_missing_optional_column_takes_the_general_path_from_the_stacked_values() -> None:
    fast = protocols._v2_numeric_columns(v2_inputs(["y", "x"], rows=1))
    assert fast is not None
    array = to_array(SCHEMA, fast)
    assert array.shape == (1, 3)
    assert array[0, :2].tolist() == [1.0, 2.0] and math.isnan(array[0, 2])


def test_errors_on_stacked_columns_name_the_input_that_is_wrong() -> None:
    inputs = v2_inputs(["y", "x", "n"])
    inputs[2]["data"] = [5, 6.5]  # a long column given a fraction
    payload = protocols._v2_numeric_columns(inputs)
    assert payload is not None
    with pytest.raises(InputError, match=r"^n: expected long"):
        to_array(SCHEMA, payload)
    assert payload.fields is not None and payload.fields["n"] == "inputs[2]"


# --- prediction routes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "route"),
    [
        ("/invocations", Route("invocations")),
        ("/predict", Route("predict")),
        ("/v2/models/iris/infer", Route("v2", "iris")),
        ("/v2/models/iris/versions/3/infer", Route("v2", "iris", "3")),
        ("/v2/models/infer", None),
        ("/v2/models//infer", None),
        ("/v2/models/iris/versions//infer", None),
        ("/v2/models/iris/ready", None),
        ("/v2/models/a/b/infer", None),
        ("/invocations/", None),
        ("/metrics", None),
    ],
)
def test_prediction_routes_match_only_their_paths(path: str, route: Route | None) -> None:
    assert match(path) == route


# --- stacked binary inputs ---------------------------------------------------------------------


def binary_body(inputs: list[dict[str, object]], *raw: bytes) -> tuple[bytes, str]:
    header = json.dumps({"id": "r", "inputs": inputs}).encode()
    return header + b"".join(raw), str(len(header))


def test_binary_columns_are_read_stacked_and_match_the_general_path() -> None:
    from maestro.serving import binary_tensors

    x, y = np.array([1.0, 3.0]), np.array([2.0, 4.0])
    inputs = [
        {"name": n, "shape": [2, 1], "datatype": "FP64", "parameters": {"binary_data_size": 16}}
        for n in ("y", "x")
    ]
    content, length = binary_body(inputs, y.tobytes(), x.tobytes())
    document, stacked = binary_tensors.read_request(content, length)
    assert stacked is not None and document["id"] == "r"
    general, _ = protocols.parse_v2(binary_tensors.parse_request(content, length))
    np.testing.assert_array_equal(to_array(SCHEMA, stacked), to_array(SCHEMA, general))


@pytest.mark.parametrize("mixed", ["json-input", "fp32", "short"])
def test_anything_else_binary_takes_the_general_path(mixed: str) -> None:
    from maestro.serving import binary_tensors
    from maestro.serving.errors import MalformedBody

    size = 8 if mixed == "short" else 16
    x = {"name": "x", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": size}}
    y: dict[str, object] = {**x, "name": "y"}
    if mixed == "json-input":
        y = {"name": "y", "shape": [2], "datatype": "FP64", "data": [2.0, 4.0]}
    if mixed == "fp32":
        y = {**y, "datatype": "FP32", "parameters": {"binary_data_size": 8}}
    raw_y = b"" if mixed == "json-input" else bytes(8 if mixed == "fp32" else 16)
    content, length = binary_body([x, y], bytes(16), raw_y)
    if mixed == "short":  # a size that does not fit its shape: the framing error names the input
        with pytest.raises(MalformedBody, match=r"inputs\[0\] \('x'\): 8 bytes of raw data"):
            binary_tensors.read_request(content, length)
        return
    document, stacked = binary_tensors.read_request(content, length)
    assert stacked is None
    assert isinstance(document["inputs"][0]["data"], np.ndarray)
