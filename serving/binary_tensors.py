"""The Open Inference Protocol's binary tensor extension over HTTP (Triton's `binary_data`).

A request or response carrying binary tensors is the JSON header, whose length in bytes the
`Inference-Header-Content-Length` header gives, followed by the tensors' raw bytes in the
order of the tensors that declare `parameters.binary_data_size`. Numeric tensors are
little-endian and row-major; a BYTES tensor is each element as a 4-byte little-endian
length followed by that many bytes. JSON (`data`) and binary tensors mix freely.

A client asks for binary outputs with the request parameter `binary_data_output` (every
output) or an output's `parameters.binary_data`; otherwise the response is plain JSON.

Pure: parsing and encoding, no I/O. Numeric tensors are read with `np.frombuffer` and
written with `tobytes`, never element by element.
"""

from __future__ import annotations

import math
import operator
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from maestro.serving import json_codec
from maestro.serving.errors import InputError, MalformedBody
from maestro.serving.outputs import Outputs, v2_datatype, v2_tensor
from maestro.serving.schema import Columns
from maestro.serving.stacked import column_rows, distinct_names, stacked_columns

EXTENSION = "binary_tensor_data"  # as the server metadata names it (Triton's name)
HEADER = "inference-header-content-length"
OCTET_STREAM = "application/octet-stream"
_BINARY_FIELDS = operator.itemgetter("datatype", "name", "shape", "parameters")

# Fixed-size datatypes as little-endian NumPy dtypes.
NUMERIC: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
_LENGTH = struct.Struct("<I")


def tensor_label(field: str, item: dict[str, Any]) -> str:
    """How errors name a tensor: `inputs[0] ('a')`."""
    name = item.get("name")
    return f"{field} ({name!r})" if isinstance(name, str) and name else field


def element_value(element: bytes) -> str | bytes:
    """A BYTES element as text when it is UTF-8, else as the bytes themselves."""
    try:
        return element.decode()
    except UnicodeDecodeError:
        return element


def parse_request(body: bytes, header_length: str) -> Any:
    """The request's JSON header with each binary input's `data` replaced by its array
    (shaped, of its datatype). Errors in the binary framing are MalformedBody (400) and
    name the tensor; the rest (names, datatypes of JSON tensors...) is left to parse_v2."""
    request, binary = _split(body, header_length)
    return _decode_inputs(request, binary)


def read_request(body: bytes, header_length: str) -> tuple[Any, Columns | None]:
    """The request's JSON header and, in the common case (every input binary, one per
    column, all of one numeric datatype, shape [n] or [n, 1]: what Triton's client sends
    for tabular rows), its inputs read with one `np.frombuffer` over the whole binary
    part. Otherwise (None) the header has each input decoded, as parse_request gives it."""
    request, binary = _split(body, header_length)
    columns = _stacked_inputs(request, binary)
    if columns is not None:
        return request, columns
    return _decode_inputs(request, binary), None


def _split(body: bytes, header_length: str) -> tuple[Any, memoryview]:
    try:
        length = int(header_length)
    except ValueError:
        raise MalformedBody(
            f"Inference-Header-Content-Length: {header_length!r} is not an integer"
        ) from None
    if length < 0 or length > len(body):
        raise MalformedBody(
            f"Inference-Header-Content-Length: {length} is outside the body of {len(body)} bytes"
        )
    try:
        request = json_codec.loads(body[:length])
    except (ValueError, UnicodeDecodeError) as err:
        raise MalformedBody(f"malformed JSON header: {err}") from None
    return request, memoryview(body)[length:]


def _stacked_inputs(request: Any, binary: memoryview) -> Columns | None:
    inputs = request.get("inputs") if type(request) is dict else None
    if type(inputs) is not list or len(inputs) < 2:
        return None
    try:
        given = [_BINARY_FIELDS(item) for item in inputs]
        sizes = [parameters["binary_data_size"] for _, _, _, parameters in given]
        datatypes = {datatype for datatype, _, _, _ in given}
    except (TypeError, KeyError):  # not objects, a field missing, an unhashable datatype
        return None
    dtype = NUMERIC.get(datatypes.pop()) if len(datatypes) == 1 else None
    rows = column_rows([shape for _, _, shape, _ in given])
    names = [name for _, name, _, _ in given]
    if dtype is None or not rows or not distinct_names(names):
        return None
    size = rows * dtype.itemsize
    if any(type(s) is not int or s != size for s in sizes) or len(binary) != size * len(names):
        return None
    if any("data" in item for item in inputs):
        return None
    matrix = np.frombuffer(binary, dtype=dtype).reshape(len(names), rows)
    return stacked_columns(names, matrix, "inputs")


def _decode_inputs(request: Any, binary: memoryview) -> Any:
    offset = 0
    inputs = request.get("inputs") if isinstance(request, dict) else None
    for i, item in enumerate(inputs if isinstance(inputs, list) else []):
        if not isinstance(item, dict):
            continue
        field = f"inputs[{i}]"
        parameters = item.get("parameters")
        if not isinstance(parameters, dict) or "binary_data_size" not in parameters:
            continue
        label = tensor_label(field, item)
        size = parameters["binary_data_size"]
        if type(size) is not int or size < 0:
            raise MalformedBody(f"{label}: binary_data_size must be a non-negative integer")
        if "data" in item:
            raise MalformedBody(f"{label}: has both data and binary_data_size")
        if offset + size > len(binary):
            raise MalformedBody(
                f"{label}: binary_data_size {size} goes past the end of the body "
                f"({len(binary) - offset} bytes of binary data left)"
            )
        item["data"] = decode(binary[offset : offset + size], item, label)
        offset += size
    if offset != len(binary):
        raise MalformedBody(
            f"the body has {len(binary)} bytes after its JSON header, "
            f"the inputs' binary_data_size sum to {offset}"
        )
    return request


def _shape(item: dict[str, Any], label: str) -> list[int]:
    shape = item.get("shape")
    if not isinstance(shape, list) or not all(
        type(d) is int and d >= 0 for d in shape
    ):  # the JSON path says the same for JSON tensors
        raise InputError(f"{label}.shape", "required list of non-negative integers")
    return shape


def decode(raw: memoryview | bytes, item: dict[str, Any], label: str) -> np.ndarray[Any, Any]:
    """One tensor's raw bytes as an array of its shape and datatype: the layout of the
    HTTP extension's binary data and of gRPC's `raw_input_contents` alike."""
    shape = _shape(item, label)
    datatype = item.get("datatype")
    count = math.prod(shape)
    if datatype == "BYTES":
        if count * _LENGTH.size > len(raw):  # before allocating `count` elements
            raise MalformedBody(
                f"{label}: shape {shape} of BYTES needs at least {count * _LENGTH.size} bytes"
                f" of length prefixes, the raw data has {len(raw)}"
            )
        return _decode_bytes(raw, count, label).reshape(shape)
    dtype = NUMERIC.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:
        raise InputError(f"{label}.datatype", f"{datatype!r} cannot be sent as binary data")
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise MalformedBody(
            f"{label}: {len(raw)} bytes of raw data, shape {shape} of {datatype} needs {expected}"
        )
    return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)


def _decode_bytes(raw: memoryview | bytes, count: int, label: str) -> np.ndarray[Any, Any]:
    values: np.ndarray[Any, Any] = np.empty(count, dtype=object)
    offset, end = 0, len(raw)
    for i in range(count):
        if offset + 4 > end:
            raise MalformedBody(f"{label}: BYTES element {i} has no 4-byte length prefix")
        (size,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + size > end:
            raise MalformedBody(f"{label}: BYTES element {i} of {size} bytes goes past its data")
        values[i] = element_value(bytes(raw[offset : offset + size]))
        offset += size
    if offset != end:
        raise MalformedBody(
            f"{label}: {end - offset} bytes left after the shape's {count} BYTES elements"
        )
    return values


# --- responses ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutputRequest:
    """Which outputs a request asks for (all when `names` is empty) and which as binary."""

    binary_all: bool = False
    names: tuple[str, ...] = ()
    binary: frozenset[str] = frozenset()

    @property
    def default(self) -> bool:
        return not (self.binary_all or self.names)

    def is_binary(self, name: str) -> bool:
        return self.binary_all or name in self.binary


PLAIN = OutputRequest()


def output_request(request: Any) -> OutputRequest:
    """The request's `binary_data_output` parameter and its `outputs`."""
    if not isinstance(request, dict):
        return PLAIN
    parameters = request.get("parameters")
    binary_all = False
    if isinstance(parameters, dict) and "binary_data_output" in parameters:
        binary_all = parameters["binary_data_output"]
        if not isinstance(binary_all, bool):
            raise InputError("parameters.binary_data_output", "must be true or false")
    outputs = request.get("outputs")
    if outputs is None:
        return OutputRequest(binary_all) if binary_all else PLAIN
    if not isinstance(outputs, list):
        raise InputError("outputs", "expected a list of {name, parameters}")
    names: list[str] = []
    binary: set[str] = set()
    for i, item in enumerate(outputs):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise InputError(f"outputs[{i}].name", "required string")
        names.append(name)
        params = item.get("parameters")
        if isinstance(params, dict) and "binary_data" in params:
            if not isinstance(params["binary_data"], bool):
                raise InputError(f"outputs[{i}].parameters.binary_data", "must be true or false")
            if params["binary_data"]:
                binary.add(name)
    return OutputRequest(binary_all, tuple(names), frozenset(binary))


def encode(array: np.ndarray[Any, Any]) -> tuple[str, bytes]:
    """An output array's datatype and raw bytes (row-major, little-endian)."""
    datatype = v2_datatype(array.dtype)
    if datatype != "BYTES":
        return datatype, array.astype(NUMERIC[datatype], copy=False).tobytes()
    flat = array.reshape(-1)
    if flat.dtype.kind == "M":  # datetimes as text, as in JSON (tolist would give integers)
        flat = flat.astype(str)
    parts: list[bytes] = []
    for value in flat.tolist():
        element = value if isinstance(value, bytes) else str(value).encode()
        parts.append(_LENGTH.pack(len(element)))
        parts.append(element)
    return datatype, b"".join(parts)


def chosen(outputs: Outputs, names: tuple[str, ...]) -> list[tuple[str, np.ndarray[Any, Any]]]:
    """The outputs a request asks for, in its order (all, in the model's order, when it
    names none); an unknown name is an InputError naming the requested output."""
    named = list(zip(outputs.names, outputs.arrays, strict=True))
    if not names:
        return named
    by_name = dict(named)
    for i, name in enumerate(names):
        if name not in by_name:
            raise InputError(
                f"outputs[{i}].name",
                f"the model has no output {name!r} (it has {', '.join(by_name)})",
            )
    return [(name, by_name[name]) for name in names]


def encode_response(
    head: dict[str, Any], outputs: Outputs, wanted: OutputRequest
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when any output is binary (None:
    the body is plain JSON). `head` holds model_name, model_version and id."""
    tensors: list[dict[str, Any]] = []
    raw: list[bytes] = []
    for name, array in chosen(outputs, wanted.names):
        if wanted.is_binary(name):
            datatype, data = encode(array)
            tensors.append(
                {
                    "name": name,
                    "shape": list(array.shape),
                    "datatype": datatype,
                    "parameters": {"binary_data_size": len(data)},
                }
            )
            raw.append(data)
        else:
            tensors.append(v2_tensor(name, array))
    header = json_codec.dumps({**head, "outputs": tensors})
    if not raw:
        return header, None
    return b"".join([header, *raw]), len(header)
