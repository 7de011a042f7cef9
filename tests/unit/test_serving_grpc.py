"""The gRPC side of the Open Inference Protocol, pure parts: the status each serving error
gets, gRPC messages to the v2 request document (raw and typed contents) and back, and the
committed message module against a fresh generation from the vendored .proto."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest

from maestro.serving import grpc_tensors, protocols
from maestro.serving.errors import (
    BodyTooLarge,
    InputError,
    MalformedBody,
    ModelNotFound,
    Overloaded,
    PredictError,
    ServingError,
    Unavailable,
)
from maestro.serving.outputs import Outputs
from maestro.serving.proto import generate
from maestro.serving.proto import grpc_predict_v2_pb2 as pb
from maestro.serving.schema import Columns, Tensor

pytestmark = pytest.mark.unit

Code = grpc.StatusCode


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (MalformedBody("x"), Code.INVALID_ARGUMENT),
        (InputError("inputs[0].shape", "x"), Code.INVALID_ARGUMENT),
        (ModelNotFound("x"), Code.NOT_FOUND),
        (BodyTooLarge("x"), Code.RESOURCE_EXHAUSTED),
        (Overloaded("x"), Code.RESOURCE_EXHAUSTED),
        (Unavailable("models are loading"), Code.UNAVAILABLE),
        (PredictError("x"), Code.INTERNAL),
        (ServingError("x", status=401), Code.UNAUTHENTICATED),
        (ServingError("x", status=403), Code.PERMISSION_DENIED),
        (ServingError("x", status=502), Code.INTERNAL),
        (ServingError("x", status=409), Code.INVALID_ARGUMENT),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else v.name,
)
def test_each_error_gets_the_status_matching_its_http_status(
    error: ServingError, code: grpc.StatusCode
) -> None:
    assert grpc_tensors.status_code(error) == code


def test_a_full_queue_is_still_503_over_http() -> None:
    assert Overloaded("x").status == 503 and isinstance(Overloaded("x"), Unavailable)


def raw_request(*tensors: tuple[str, str, list[int], bytes]) -> Any:
    request = pb.ModelInferRequest(model_name="m", id="r1")
    for name, datatype, shape, raw in tensors:
        request.inputs.add(name=name, datatype=datatype, shape=shape)
        request.raw_input_contents.append(raw)
    return request


def length_prefixed(*values: bytes) -> bytes:
    return b"".join(len(v).to_bytes(4, "little") + v for v in values)


def test_raw_contents_decode_to_the_v2_document_and_parse_as_columns() -> None:
    request = raw_request(
        ("a", "FP64", [2, 1], np.array([1.5, -2.0]).tobytes()),
        ("b", "FP32", [2, 1], np.array([0.5, 0.25], dtype="<f4").tobytes()),
        ("c", "INT64", [2, 1], np.array([3, 2**40], dtype="<i8").tobytes()),
        ("s", "BYTES", [2, 1], length_prefixed(b"red", "h\u00e9".encode())),
    )
    document = grpc_tensors.request_document(request)
    assert document["id"] == "r1"
    assert [(i["name"], i["datatype"], i["shape"]) for i in document["inputs"]] == [
        ("a", "FP64", [2, 1]),
        ("b", "FP32", [2, 1]),
        ("c", "INT64", [2, 1]),
        ("s", "BYTES", [2, 1]),
    ]
    payload, request_id = protocols.parse_v2(document)
    assert request_id == "r1" and isinstance(payload, Columns)
    assert {k: list(v) for k, v in payload.data.items()} == {
        "a": [1.5, -2.0],
        "b": [0.5, 0.25],
        "c": [3, 2**40],
        "s": ["red", "h\u00e9"],
    }
    assert payload.data["c"].dtype == np.int64 and payload.data["b"].dtype == np.float32


@pytest.mark.parametrize(
    ("datatype", "shape"),
    [("FP64", [3, 1]), ("FP32", [3]), ("INT64", [3, 1]), ("BOOL", [3])],
    ids=["fp64-n1", "fp32-n", "int64", "bool"],
)
def test_the_column_fast_path_gives_parse_v2s_payload(datatype: str, shape: list[int]) -> None:
    dtype = {"FP64": "<f8", "FP32": "<f4", "INT64": "<i8", "BOOL": "?"}[datatype]
    columns = {
        name: np.array(values, dtype=dtype)
        for name, values in (("a", [1, 0, 3]), ("b", [0, 5, 6]), ("c", [7, 1, 0]))
    }
    request = raw_request(*((n, datatype, shape, v.tobytes()) for n, v in columns.items()))
    fast, request_id = grpc_tensors.request_payload(request)
    general, _ = protocols.parse_v2(grpc_tensors.request_document(request))
    assert request_id == "r1"
    assert isinstance(fast, Columns) and isinstance(general, Columns)
    assert fast.fields == general.fields == {"a": "inputs[0]", "b": "inputs[1]", "c": "inputs[2]"}
    for name, values in columns.items():
        assert fast.data[name].dtype == general.data[name].dtype == values.dtype
        assert fast.data[name].tolist() == general.data[name].tolist() == values.tolist()


def test_what_the_fast_path_does_not_take_is_still_named() -> None:
    ok = np.zeros(2).tobytes()
    request = raw_request(("a", "FP64", [2, 1], ok), ("b", "FP64", [2, 1], ok[:8]))
    with pytest.raises(MalformedBody, match=r"inputs\[1\] \('b'\): 8 bytes of raw data"):
        grpc_tensors.request_payload(request)
    twice = raw_request(("a", "FP64", [2, 1], ok), ("a", "FP64", [2, 1], ok))
    with pytest.raises(InputError, match="'a' is given twice"):
        grpc_tensors.request_payload(twice)


def test_typed_contents_decode_like_raw_ones() -> None:
    request = pb.ModelInferRequest(model_name="m")
    a = request.inputs.add(name="a", datatype="FP64", shape=[2])
    a.contents.fp64_contents.extend([1.5, -2.0])
    c = request.inputs.add(name="c", datatype="INT32", shape=[2])
    c.contents.int_contents.extend([7, -8])
    s = request.inputs.add(name="s", datatype="BYTES", shape=[2])
    s.contents.bytes_contents.extend([b"red", b"\xff"])
    payload, _ = protocols.parse_v2(grpc_tensors.request_document(request))
    assert isinstance(payload, Columns)
    assert payload.data["c"].dtype == np.int32
    assert {k: list(v) for k, v in payload.data.items()} == {
        "a": [1.5, -2.0],
        "c": [7, -8],
        "s": ["red", b"\xff"],  # not UTF-8: kept as bytes
    }


def test_one_raw_tensor_keeps_its_shape() -> None:
    matrix = np.arange(6, dtype="<f8").reshape(2, 3)
    request = raw_request(("x", "FP64", [2, 3], matrix.tobytes()))
    payload, _ = protocols.parse_v2(grpc_tensors.request_document(request))
    assert isinstance(payload, Tensor)
    np.testing.assert_array_equal(payload.data, matrix)


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (
            raw_request(("a", "FP64", [2, 1], b"\0" * 8)),
            MalformedBody,
            "inputs[0] ('a'): 8 bytes of raw data, shape [2, 1] of FP64 needs 16",
        ),
        (
            raw_request(("a", "FP64", [1], b"\0" * 8), ("s", "BYTES", [2], length_prefixed(b"x"))),
            MalformedBody,
            "inputs[1] ('s'): shape [2] of BYTES needs at least 8 bytes",
        ),
        (
            raw_request(("s", "BYTES", [1], length_prefixed(b"x") + b"!")),
            MalformedBody,
            "inputs[0] ('s'): 1 bytes left after",
        ),
        (
            raw_request(("a", "FP64", [-1], b"")),
            InputError,
            "inputs[0] ('a').shape",
        ),
        (
            raw_request(("a", "FP99", [1], b"\0" * 8)),
            InputError,
            "inputs[0] ('a').datatype: 'FP99' cannot be sent as binary data",
        ),
    ],
    ids=["size", "bytes-count", "bytes-trailing", "negative-shape", "datatype"],
)
def test_malformed_raw_contents_name_the_tensor(
    request_: Any, error: type[ServingError], message: str
) -> None:
    with pytest.raises(error) as caught:
        grpc_tensors.request_document(request_)
    assert message in caught.value.message


def test_raw_contents_of_the_wrong_count_name_the_tensor_without_one() -> None:
    request = raw_request(("a", "FP64", [1], b"\0" * 8))
    request.inputs.add(name="c", datatype="INT64", shape=[1])
    with pytest.raises(MalformedBody, match=r"inputs\[1\] \('c'\): no raw_input_contents entry"):
        grpc_tensors.request_document(request)
    request = raw_request(("a", "FP64", [1], b"\0" * 8))
    request.raw_input_contents.append(b"\0" * 8)
    with pytest.raises(MalformedBody, match="raw_input_contents: 2 entries for 1 inputs"):
        grpc_tensors.request_document(request)


def test_raw_and_typed_contents_do_not_mix() -> None:
    request = raw_request(("a", "FP64", [1], b"\0" * 8))
    request.inputs[0].contents.fp64_contents.append(1.0)
    with pytest.raises(MalformedBody, match=r"inputs\[0\] \('a'\): has both contents"):
        grpc_tensors.request_document(request)


def test_typed_contents_that_do_not_fit_name_the_field() -> None:
    request = pb.ModelInferRequest(model_name="m")
    tensor = request.inputs.add(name="a", datatype="INT8", shape=[1])
    tensor.contents.int_contents.append(300)
    with pytest.raises(InputError, match=r"inputs\[0\].contents.int_contents"):
        grpc_tensors.request_document(request)
    half = pb.ModelInferRequest(model_name="m")
    half.inputs.add(name="h", datatype="FP16", shape=[1])
    with pytest.raises(InputError, match="FP16 tensors must be sent as raw_input_contents"):
        grpc_tensors.request_document(half)
    # a count not matching the shape is parse_v2's error, as for JSON data
    short = pb.ModelInferRequest(model_name="m")
    short.inputs.add(name="a", datatype="FP64", shape=[3]).contents.fp64_contents.extend([1.0])
    with pytest.raises(InputError, match=r"inputs\[0\].shape: \[3\] needs 3 values"):
        protocols.parse_v2(grpc_tensors.request_document(short))


def test_outputs_answer_as_raw_contents_in_the_requested_order() -> None:
    outputs = Outputs(
        ("label", "proba"),
        (np.array([1, 0], dtype=np.int64), np.array([[0.2, 0.8], [0.9, 0.1]])),
    )
    response = grpc_tensors.infer_response("m", "3", "r1", outputs, ())
    assert (response.model_name, response.model_version, response.id) == ("m", "3", "r1")
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("label", "INT64", [2]),
        ("proba", "FP64", [2, 2]),
    ]
    assert response.raw_output_contents[0] == np.array([1, 0], dtype="<i8").tobytes()
    only = grpc_tensors.infer_response("m", "", "", outputs, ("proba",))
    assert [o.name for o in only.outputs] == ["proba"] and len(only.raw_output_contents) == 1
    with pytest.raises(InputError, match=r"outputs\[0\].name: the model has no output 'nope'"):
        grpc_tensors.infer_response("m", "", "", outputs, ("nope",))


def test_text_outputs_are_length_prefixed_bytes() -> None:
    outputs = Outputs(("label",), (np.array(["setosa", "virginica"], dtype=object),))
    response = grpc_tensors.infer_response("m", "", "", outputs, ())
    assert response.outputs[0].datatype == "BYTES"
    assert response.raw_output_contents[0] == length_prefixed(b"setosa", b"virginica")


def test_metadata_carries_every_tensor_with_name_datatype_and_shape() -> None:
    document = {
        "name": "iris",
        "versions": ["3"],
        "platform": "mlflow-sklearn",
        "inputs": [{"name": "a", "datatype": "FP64", "shape": [-1, 1]}],
        "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]}],
        "parameters": {"uri": "models:/iris/3"},
    }
    message = grpc_tensors.metadata_response(document)
    assert (message.name, list(message.versions), message.platform) == (
        "iris",
        ["3"],
        "mlflow-sklearn",
    )
    assert [(t.name, t.datatype, list(t.shape)) for t in message.inputs] == [("a", "FP64", [-1, 1])]
    assert [(t.name, t.datatype, list(t.shape)) for t in message.outputs] == [
        ("label", "INT64", [-1])
    ]


def test_the_committed_messages_are_protocs_output_of_the_vendored_proto() -> None:
    # grpc_tools is a dev dependency (`make install`); a missing one fails the test here.
    for name, text in generate.generate().items():
        committed = (generate.HERE / name).read_text()
        assert committed == text, f"serving/proto/{name} is stale: run make grpc-stubs"


def test_the_messages_are_the_protocols_own() -> None:
    """Package and service as the published protocol names them (clients call
    /inference.GRPCInferenceService/ModelInfer), in a pool of their own."""
    assert pb.DESCRIPTOR.package == "inference"
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == grpc_tensors.SERVICE
    assert [m.name for m in service.methods] == [
        "ServerLive",
        "ServerReady",
        "ModelReady",
        "ServerMetadata",
        "ModelMetadata",
        "ModelInfer",
    ]
    from google.protobuf import descriptor_pool

    assert pb.DESCRIPTOR.pool is not descriptor_pool.Default()


def test_the_grpc_port_is_a_setting_with_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from maestro.serving import contract
    from maestro.serving.settings import ServeSettings

    assert ServeSettings(model_uri="models:/m/1").grpc_port == 8081
    monkeypatch.setenv(contract.GRPC_PORT, "9001")
    assert ServeSettings(model_uri="models:/m/1").grpc_port == 9001
    assert ServeSettings(model_uri="models:/m/1", grpc_port=0).grpc_port == 0  # off
    with pytest.raises(ValidationError, match="grpc_port: 9001 is the HTTP port too"):
        ServeSettings(model_uri="models:/m/1", port=9001)
