"""The Open Inference Protocol's gRPC messages to and from what the HTTP path uses, and
the gRPC status of each serving error. Pure: no I/O, no grpc server.

A `ModelInferRequest` becomes the same v2 request document the HTTP binary extension
parses into (each input's `data` an array of its shape and datatype), so `protocols.parse_v2`
and the model's signature check it exactly as they check HTTP requests. Raw contents
(`raw_input_contents`, one entry per input, in order) have the binary extension's layout
and are read by `binary_tensors.decode`; typed contents (`InferTensorContents`) by one
NumPy conversion per tensor. One input per column of one numeric datatype, the common case,
skips the document for the payload parse_v2 would make of it (`request_payload`). Outputs
are always answered as `raw_output_contents`.
"""

from __future__ import annotations

import operator
from typing import Any

import grpc
import numpy as np

from maestro.serving import binary_tensors, protocols
from maestro.serving.errors import (
    InputError,
    MalformedBody,
    Overloaded,
    ServingError,
)
from maestro.serving.outputs import Outputs
from maestro.serving.proto import grpc_predict_v2_pb2 as pb
from maestro.serving.schema import Columns, Payload
from maestro.serving.stacked import column_rows, distinct_names, stacked_columns

SERVICE = "inference.GRPCInferenceService"

# Where InferTensorContents holds each datatype's values (FP16 has no field: raw only).
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

_BY_HTTP_STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    # The body parses but does not fit the protocol or the signature: still the caller's
    # argument that is wrong (FAILED_PRECONDITION would say the server's state is).
    422: grpc.StatusCode.INVALID_ARGUMENT,
    500: grpc.StatusCode.INTERNAL,
    503: grpc.StatusCode.UNAVAILABLE,
}


def status_code(err: ServingError) -> grpc.StatusCode:
    """The gRPC status of an error, matching its HTTP status: a full queue (HTTP 503 +
    Retry-After) is RESOURCE_EXHAUSTED, loading or shutting down (503) UNAVAILABLE."""
    if isinstance(err, Overloaded):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    code = _BY_HTTP_STATUS.get(err.status)
    if code is not None:
        return code
    return grpc.StatusCode.INTERNAL if err.status >= 500 else grpc.StatusCode.INVALID_ARGUMENT


# --- requests ---------------------------------------------------------------------------------


def request_payload(request: pb.ModelInferRequest) -> tuple[Payload, str | None]:
    """The request as the payload `protocols.parse_v2` makes of its v2 document, and its id.

    The common case (what Triton's and KServe's clients send for tabular rows: one raw
    input per column, all of one numeric datatype, shape [n] or [n, 1]) is read with one
    `np.frombuffer` over all columns; anything else, and anything wrong, takes the general
    path, which also names the tensor of any error."""
    columns = _raw_numeric_columns(request)
    if columns is not None:
        return columns, request.id or None
    return protocols.parse_v2(request_document(request))


def _raw_numeric_columns(request: pb.ModelInferRequest) -> Columns | None:
    # Each field read of a protobuf message is a call into upb; with one input per column
    # this runs for every column of every request, so the reads go through map() and
    # attrgetter (C-level loops) and each field is read once: for 30 columns, 61 µs a
    # request where a Python loop with list(t.shape) per input took 121 µs.
    raw = request.raw_input_contents
    inputs = request.inputs
    count = len(inputs)
    if count < 2 or len(raw) != count:
        return None
    datatypes = list(map(_DATATYPE, inputs))
    datatype = datatypes[0]
    dtype = binary_tensors.NUMERIC.get(datatype)
    if dtype is None or datatypes.count(datatype) != count or any(map(_HAS_CONTENTS, inputs)):
        return None
    rows = column_rows([shape[:] for shape in map(_SHAPE, inputs)])
    names = list(map(_NAME, inputs))
    if not rows or not distinct_names(names):
        return None
    size = rows * dtype.itemsize
    if set(map(len, raw)) != {size}:
        return None
    matrix = np.frombuffer(b"".join(raw), dtype=dtype).reshape(count, rows)
    return stacked_columns(names, matrix, "inputs")


_DATATYPE = operator.attrgetter("datatype")
_NAME = operator.attrgetter("name")
_SHAPE = operator.attrgetter("shape")
_HAS_CONTENTS = operator.methodcaller("HasField", "contents")


def request_document(request: pb.ModelInferRequest) -> dict[str, Any]:
    """The request as a v2 request document for `protocols.parse_v2`, each input's data
    decoded to an array. Framing errors (raw contents of the wrong size or count, raw and
    typed contents mixed) are MalformedBody naming the tensor."""
    raw = request.raw_input_contents
    inputs = request.inputs
    if raw and len(raw) != len(inputs):
        if len(raw) < len(inputs):
            missing = _label(len(raw), inputs[len(raw)])
            raise MalformedBody(
                f"{missing}: no raw_input_contents entry ({len(raw)} given for"
                f" {len(inputs)} inputs, one per input in order)"
            )
        raise MalformedBody(
            f"raw_input_contents: {len(raw)} entries for {len(inputs)} inputs"
            " (one per input in order)"
        )
    items: list[dict[str, Any]] = []
    for i, tensor in enumerate(inputs):
        item: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": list(tensor.shape),
        }
        label = _label(i, tensor)
        if raw:
            if tensor.HasField("contents"):
                raise MalformedBody(f"{label}: has both contents and raw_input_contents")
            item["data"] = binary_tensors.decode(raw[i], item, label)
        else:
            item["data"] = _typed_contents(tensor, f"inputs[{i}]", label)
        items.append(item)
    document: dict[str, Any] = {"inputs": items}
    if request.id:
        document["id"] = request.id
    return document


def _label(i: int, tensor: pb.ModelInferRequest.InferInputTensor) -> str:
    return binary_tensors.tensor_label(f"inputs[{i}]", {"name": tensor.name})


def _typed_contents(
    tensor: pb.ModelInferRequest.InferInputTensor, field: str, label: str
) -> np.ndarray[Any, Any] | list[Any]:
    """A tensor's `contents` as a flat array (parse_v2 checks its size against the shape
    and reshapes it). An unknown datatype gives an empty list: parse_v2 names it."""
    datatype = tensor.datatype
    name = CONTENTS_FIELD.get(datatype)
    if name is None:
        if datatype == "FP16":
            raise InputError(f"{field}.datatype", "FP16 tensors must be sent as raw_input_contents")
        return []
    values = getattr(tensor.contents, name)
    if datatype == "BYTES":
        array: np.ndarray[Any, Any] = np.empty(len(values), dtype=object)
        array[:] = [binary_tensors.element_value(v) for v in values]
        return array
    try:
        return np.asarray(values, dtype=binary_tensors.NUMERIC[datatype])
    except (OverflowError, ValueError) as err:
        raise InputError(
            f"{field}.contents.{name}", f"values do not fit {datatype} ({label}): {err}"
        ) from None


def requested_outputs(request: pb.ModelInferRequest) -> tuple[str, ...]:
    return tuple(output.name for output in request.outputs)


# --- responses --------------------------------------------------------------------------------


def infer_response(
    model: str, version: str, request_id: str, outputs: Outputs, names: tuple[str, ...]
) -> pb.ModelInferResponse:
    """The outputs a request asks for (all when it names none) as raw output contents."""
    response = pb.ModelInferResponse(model_name=model, model_version=version, id=request_id)
    for name, array in binary_tensors.chosen(outputs, names):
        datatype, data = binary_tensors.encode(array)
        response.outputs.add(name=name, datatype=datatype, shape=array.shape)
        response.raw_output_contents.append(data)
    return response


def metadata_response(document: dict[str, Any]) -> pb.ModelMetadataResponse:
    """The HTTP model metadata (`model_metadata.metadata`) as the gRPC message; its
    `parameters` have no place in the message and are left out."""

    def tensors(key: str) -> list[pb.ModelMetadataResponse.TensorMetadata]:
        return [
            pb.ModelMetadataResponse.TensorMetadata(
                name=t["name"], datatype=t["datatype"], shape=t["shape"]
            )
            for t in document[key]
        ]

    return pb.ModelMetadataResponse(
        name=document["name"],
        versions=document["versions"],
        platform=document["platform"],
        inputs=tensors("inputs"),
        outputs=tensors("outputs"),
    )
