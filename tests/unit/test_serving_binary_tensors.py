"""The binary tensor extension's parsing and encoding (serving.binary_tensors), checked
against the framing NVIDIA's own client writes (tritonclient.utils)."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tritonclient.utils import deserialize_bytes_tensor, serialize_byte_tensor

from maestro.serving import binary_tensors as bt
from maestro.serving import protocols
from maestro.serving.errors import InputError, MalformedBody
from maestro.serving.outputs import Outputs

pytestmark = pytest.mark.unit


def body(header: dict[str, Any], *raw: bytes) -> tuple[bytes, str]:
    head = json.dumps(header).encode()
    return head + b"".join(raw), str(len(head))


def binary_input(
    name: str, array: np.ndarray[Any, Any], datatype: str
) -> tuple[dict[str, Any], bytes]:
    raw = (
        serialize_byte_tensor(array).item()
        if datatype == "BYTES"
        else array.astype(bt.NUMERIC[datatype]).tobytes()
    )
    item = {
        "name": name,
        "shape": list(array.shape),
        "datatype": datatype,
        "parameters": {"binary_data_size": len(raw)},
    }
    return item, raw


@pytest.mark.parametrize(
    ("datatype", "array"),
    [
        ("FP64", np.array([[1.5, -2.0], [3.25, 4.0]])),
        ("FP32", np.array([0.5, 1.5, -3.0], dtype=np.float32)),
        ("INT64", np.array([[1], [-2], [2**40]], dtype=np.int64)),
        ("INT32", np.array([7, -8], dtype=np.int32)),
        ("BOOL", np.array([True, False, True])),
        ("BYTES", np.array(["a", "", "héllo"], dtype=object)),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_each_datatype_decodes_to_its_array(datatype: str, array: np.ndarray[Any, Any]) -> None:
    item, raw = binary_input("x", array, datatype)
    request = bt.parse_request(*body({"inputs": [item]}, raw))
    decoded = request["inputs"][0]["data"]
    assert decoded.shape == array.shape
    assert decoded.tolist() == array.tolist()
    if datatype != "BYTES":
        assert decoded.dtype == bt.NUMERIC[datatype]


def test_json_and_binary_tensors_mix_and_parse_as_columns() -> None:
    a, raw_a = binary_input("a", np.array([1.0, 2.0]), "FP64")
    c, raw_c = binary_input("c", np.array([3, 4], dtype=np.int64), "INT64")
    b = {"name": "b", "shape": [2], "datatype": "FP32", "data": [0.5, 0.25]}
    request = bt.parse_request(*body({"inputs": [a, b, c]}, raw_a, raw_c))
    payload, _ = protocols.parse_v2(request)
    assert {k: list(v) for k, v in payload.data.items()} == {  # type: ignore[union-attr]
        "a": [1.0, 2.0],
        "b": [0.5, 0.25],
        "c": [3, 4],
    }


def test_a_size_not_matching_shape_and_datatype_names_the_tensor() -> None:
    item, raw = binary_input("x", np.array([1.0, 2.0]), "FP64")
    item["shape"] = [3]
    with pytest.raises(MalformedBody, match=r"inputs\[0\] \('x'\).*needs 24"):
        bt.parse_request(*body({"inputs": [item]}, raw))


def test_a_header_length_beyond_the_body_is_malformed() -> None:
    data, _ = body({"inputs": []})
    with pytest.raises(MalformedBody, match="outside the body"):
        bt.parse_request(data, str(len(data) + 1))
    with pytest.raises(MalformedBody, match="not an integer"):
        bt.parse_request(data, "ten")


def test_sizes_not_summing_to_the_body_are_malformed() -> None:
    item, raw = binary_input("x", np.array([1.0, 2.0]), "FP64")
    with pytest.raises(MalformedBody, match=r"16 bytes after its JSON header.*sum to 0"):
        bt.parse_request(*body({"inputs": [{**item, "parameters": {}, "data": [1, 2]}]}, raw))
    with pytest.raises(MalformedBody, match=r"inputs\[0\] \('x'\).*past the end"):
        bt.parse_request(*body({"inputs": [item]}, raw[:8]))
    with pytest.raises(MalformedBody, match=r"24 bytes after .* sum to 16"):
        bt.parse_request(*body({"inputs": [item]}, raw, b"12345678"))


def test_broken_bytes_elements_name_the_tensor() -> None:
    item, raw = binary_input("s", np.array(["ab", "cd"], dtype=object), "BYTES")
    item["parameters"]["binary_data_size"] = len(raw) - 1
    with pytest.raises(MalformedBody, match=r"inputs\[0\] \('s'\): BYTES element 1"):
        bt.parse_request(*body({"inputs": [item]}, raw[:-1]))
    extra = raw + struct.pack("<I", 0)
    item["parameters"]["binary_data_size"] = len(extra)
    with pytest.raises(MalformedBody, match="4 bytes left after"):
        bt.parse_request(*body({"inputs": [item]}, extra))


def test_a_bad_binary_data_size_and_datatype() -> None:
    item, raw = binary_input("x", np.array([1.0]), "FP64")
    item["parameters"]["binary_data_size"] = "8"
    with pytest.raises(MalformedBody, match="non-negative integer"):
        bt.parse_request(*body({"inputs": [item]}, raw))
    item["parameters"]["binary_data_size"] = 8
    item["datatype"] = "FP128"
    with pytest.raises(InputError, match="FP128"):
        bt.parse_request(*body({"inputs": [item]}, raw))


def test_output_request_from_the_parameters() -> None:
    assert bt.output_request({"inputs": []}).default
    every = bt.output_request({"parameters": {"binary_data_output": True}})
    assert every.is_binary("anything") and not every.names
    some = bt.output_request(
        {"outputs": [{"name": "p", "parameters": {"binary_data": True}}, {"name": "q"}]}
    )
    assert some.names == ("p", "q") and some.is_binary("p") and not some.is_binary("q")
    with pytest.raises(InputError, match="binary_data_output"):
        bt.output_request({"parameters": {"binary_data_output": "yes"}})


def split(data: bytes, length: int) -> tuple[dict[str, Any], bytes]:
    return json.loads(data[:length]), data[length:]


def test_a_response_with_binary_and_json_outputs() -> None:
    outputs = Outputs(
        ("p", "label", "j"),
        (
            np.array([0.25, 0.75], dtype=np.float32),
            np.array(["yes", "no"], dtype=object),
            np.array([1, 2]),
        ),
    )
    wanted = bt.OutputRequest(binary=frozenset({"p", "label"}), names=("p", "label", "j"))
    data, length = bt.encode_response({"model_name": "m"}, outputs, wanted)
    assert length is not None
    header, raw = split(data, length)
    p, label, j = header["outputs"]
    assert p["datatype"] == "FP32" and p["parameters"] == {"binary_data_size": 8}
    assert np.frombuffer(raw[:8], "<f4").tolist() == [0.25, 0.75]
    assert label["datatype"] == "BYTES"
    assert deserialize_bytes_tensor(raw[8:]).tolist() == [b"yes", b"no"]
    assert j == {"name": "j", "shape": [2], "datatype": "INT64", "data": [1, 2]}


def test_a_response_without_binary_outputs_is_json_and_requested_outputs_are_checked() -> None:
    outputs = Outputs(("p",), (np.array([1.0, 2.0]),))
    data, length = bt.encode_response({}, outputs, bt.OutputRequest(names=("p",)))
    assert length is None and json.loads(data)["outputs"][0]["data"] == [1.0, 2.0]
    with pytest.raises(InputError, match=r"outputs\[0\].name.*no output 'q'"):
        bt.encode_response({}, outputs, bt.OutputRequest(names=("q",)))


def test_datetime_outputs_are_sent_as_text() -> None:
    _, raw = bt.encode(np.array(["2026-01-02T03:04:05"], dtype="datetime64[s]"))
    assert deserialize_bytes_tensor(raw).tolist() == [b"2026-01-02T03:04:05"]


def test_output_specs_from_the_signature_else_from_the_warm_up() -> None:
    from mlflow.models import infer_signature

    from maestro.serving.loader import output_specs
    from maestro.serving.outputs import OutputSpec

    X = pd.DataFrame({"a": [1.0, 2.0]})
    columns = infer_signature(X, pd.Series([1, 0], name="label"))
    assert output_specs(columns, None) == (OutputSpec("label", "INT64", (-1,)),)
    frame = infer_signature(X, pd.DataFrame({"p": [0.5, 0.2], "q": ["x", "y"]}))
    assert output_specs(frame, None) == (
        OutputSpec("p", "FP64", (-1,)),
        OutputSpec("q", "BYTES", (-1,)),
    )
    tensor = infer_signature(np.zeros((2, 3)), np.zeros((2, 4), dtype=np.float32))
    assert output_specs(tensor, None) == (OutputSpec("predict", "FP32", (-1, 4)),)
    warm = Outputs(("predict",), (np.zeros((2, 3), dtype=np.int32),))
    assert output_specs(None, warm) == (OutputSpec("predict", "INT32", (-1, 3)),)
    assert output_specs(None, None) == ()
