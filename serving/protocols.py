"""Request bodies of the three protocols, parsed into payloads, and their response bodies.

- Open Inference Protocol v2 (KServe, MLServer, Triton): `inputs` of named tensors
  {name, shape, datatype, data}; one tensor = the model's whole input (rows of signature
  columns, or its tensor), several = one per signature column. The `id` is echoed.
- MLflow scoring (`/invocations`): exactly one of dataframe_split, dataframe_records,
  instances, inputs (JSON), or a CSV body; answered {"predictions": ...}.
- `/predict`: {"instances": [...]}, answered {"predictions": ...}.
"""

from __future__ import annotations

import io
import math
import operator
from typing import Any

import numpy as np

from maestro.serving import json_codec
from maestro.serving.errors import InputError, MalformedBody
from maestro.serving.outputs import Outputs, to_mlflow, to_v2
from maestro.serving.schema import Columns, Payload, Records, Rows, Tensor
from maestro.serving.stacked import column_rows, distinct_names, stacked_columns

V2_DATATYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
    "BYTES": object,
}
V2_NUMERIC = {name: dtype for name, dtype in V2_DATATYPES.items() if name != "BYTES"}
_V2_FIELDS = operator.itemgetter("datatype", "name", "shape", "data")
MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def parse_json(body: bytes) -> Any:
    if not body:
        raise MalformedBody("empty body: expected a JSON object")
    try:
        return json_codec.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise MalformedBody(f"malformed JSON: {err}") from None


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InputError("body", f"expected a JSON object, got {type(body).__name__}")
    return body


# --- v2 ----------------------------------------------------------------------------------------


def v2_request_id(request: dict[str, Any]) -> str | None:
    request_id = request.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InputError("id", "must be a string")
    return request_id


def parse_v2(body: Any) -> tuple[Payload, str | None]:
    """A v2 inference request as a payload, and its `id`."""
    request = _object(body)
    request_id = v2_request_id(request)
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InputError("inputs", "expected a non-empty list of input tensors")
    if len(inputs) > 1:
        columns = _v2_numeric_columns(inputs)
        if columns is not None:
            return columns, request_id
    tensors = [_v2_tensor(item, f"inputs[{i}]") for i, item in enumerate(inputs)]
    if len(tensors) == 1:
        name, array, field = tensors[0]
        return Tensor(array, None, field, array.dtype), request_id
    data: dict[str, Any] = {}
    fields: dict[str, str] = {}
    for name, array, field in tensors:
        if name in data:
            raise InputError(f"{field}.name", f"{name!r} is given twice")
        if array.ndim == 2 and array.shape[1] == 1:
            array = array.reshape(-1)
        if array.ndim != 1:
            raise InputError(
                f"{field}.shape",
                f"{list(array.shape)}: with one input per column, each must be [n] or [n, 1]",
            )
        data[name] = array
        fields[name] = field
    return Columns(data, "inputs", fields), request_id


def _v2_numeric_columns(inputs: list[Any]) -> Columns | None:
    """One input per column, all of one numeric datatype, shape [n] or [n, 1], flat data:
    the common case (KServe's and MLServer's clients send tabular rows so), converted by one
    NumPy call instead of one per column and kept stacked (serving.stacked). None: anything
    else, for the general path, which also names the field of any error."""
    # Whole-list operations (zip, set, map) rather than a Python loop per input: with one
    # input per column this runs for every column of every request.
    try:
        datatypes, names, shapes, values = zip(*map(_V2_FIELDS, inputs), strict=True)
        single = len(set(datatypes)) == 1
    except (TypeError, KeyError):  # not an object, a field missing, an unhashable datatype
        return None
    if not single or datatypes[0] not in V2_NUMERIC or set(map(type, values)) != {list}:
        return None
    rows = column_rows(list(shapes))
    if rows is None or not distinct_names(list(names)) or set(map(len, values)) != {rows}:
        return None
    datatype = datatypes[0]
    try:
        if rows == 1:
            # One row: a flat list converts in a third of the time of a list of lists.
            flat = np.array([data[0] for data in values], dtype=V2_NUMERIC[datatype])
            matrix = flat.reshape(-1, 1) if flat.ndim == 1 else flat
        else:
            matrix = np.asarray(values, dtype=V2_NUMERIC[datatype])
    except (TypeError, ValueError, OverflowError):
        return None
    if matrix.ndim != 2 or matrix.shape[1] != rows:
        return None  # e.g. nested values: the general path says which input is wrong
    return stacked_columns(list(names), matrix, "inputs")


def _v2_tensor(item: Any, field: str) -> tuple[str, np.ndarray[Any, Any], str]:
    if not isinstance(item, dict):
        raise InputError(field, "expected an object {name, shape, datatype, data}")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{field}.name", "required string")
    shape = item.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise InputError(f"{field}.shape", "required list of non-negative integers")
    datatype = item.get("datatype")
    # A client may send anything there, a list too (unhashable: no dictionary lookup).
    if not isinstance(datatype, str) or datatype not in V2_DATATYPES:
        raise InputError(
            f"{field}.datatype", f"{datatype!r} is not one of {', '.join(V2_DATATYPES)}"
        )
    data = item.get("data")
    if not isinstance(data, list | np.ndarray):
        raise InputError(f"{field}.data", "required list of values")
    dtype = V2_DATATYPES[datatype]
    array: np.ndarray[Any, Any]
    try:
        if isinstance(data, np.ndarray):  # a binary tensor, decoded to its shape and datatype
            array = data
        elif dtype is object:
            flat = np.empty(_flat_size(data), dtype=object)
            flat[:] = list(_flatten(data))
            array = flat
        else:
            array = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as err:
        raise InputError(f"{field}.data", f"values do not fit datatype {datatype}: {err}") from None
    # math.prod and a reshape only when needed: per-column requests carry one small tensor
    # per column, and NumPy's per-call overhead dominates at that size.
    expected = math.prod(shape)
    if array.size != expected:
        raise InputError(
            f"{field}.shape", f"{shape} needs {expected} values, {field}.data has {array.size}"
        )
    if array.ndim != len(shape) or list(array.shape) != shape:
        array = array.reshape(shape)
    return name, array, field


def _flatten(data: Any) -> Any:
    for value in data:
        if isinstance(value, list):
            yield from _flatten(value)
        else:
            yield value


def _flat_size(data: Any) -> int:
    return sum(_flat_size(v) if isinstance(v, list) else 1 for v in data)


def v2_response(
    model: str, version: str, request_id: str | None, outputs: Outputs
) -> dict[str, Any]:
    response: dict[str, Any] = {"model_name": model, "model_version": version or None}
    if request_id is not None:
        response["id"] = request_id
    response["outputs"] = to_v2(outputs)
    return response


# --- MLflow scoring and /predict -----------------------------------------------------------


def parse_invocations(body: bytes, content_type: str) -> Payload:
    """An /invocations body (JSON in one of MLflow's four formats, or CSV)."""
    if content_type.startswith("text/csv"):
        return _parse_csv(body)
    request = _object(parse_json(body))
    formats = [key for key in MLFLOW_FORMATS if key in request]
    if len(formats) != 1:
        raise InputError(
            "body",
            f"expected exactly one of {', '.join(MLFLOW_FORMATS)}"
            + (f", got {', '.join(formats)}" if formats else ""),
        )
    for key in request:
        if key not in MLFLOW_FORMATS and key != "params":
            raise InputError(key, f"unknown field; expected one of {', '.join(MLFLOW_FORMATS)}")
    key = formats[0]
    value = request[key]
    if key == "dataframe_split":
        return _dataframe_split(value)
    if key == "dataframe_records":
        if not isinstance(value, list):
            raise InputError(key, "expected a list of objects, one per row")
        return Records(value, key)
    return _instances(value, key)


def parse_predict(body: bytes) -> Payload:
    request = _object(parse_json(body))
    for key in request:
        if key != "instances":
            raise InputError(key, 'unknown field; expected {"instances": [...]}')
    if "instances" not in request:
        raise InputError("instances", "required")
    return _instances(request["instances"], "instances")


def _dataframe_split(value: Any) -> Payload:
    field = "dataframe_split"
    if not isinstance(value, dict):
        raise InputError(field, "expected an object {columns, data}")
    if "data" not in value:
        raise InputError(f"{field}.data", "required")
    columns = value.get("columns")
    if columns is not None and not isinstance(columns, list):
        raise InputError(f"{field}.columns", "expected a list of column names")
    if columns is None:
        return Tensor(value["data"], None, f"{field}.data")
    return Rows(value["data"], columns, field)


def _instances(value: Any, field: str) -> Payload:
    if isinstance(value, dict):
        return Columns(value, field)
    if not isinstance(value, list):
        raise InputError(field, "expected a list of rows or an object of columns")
    if value and isinstance(value[0], dict):
        return Records(value, field)
    return Tensor(value, None, field)


def _parse_csv(body: bytes) -> Payload:
    import pandas as pd

    try:
        frame = pd.read_csv(io.BytesIO(body))
    except Exception as err:
        raise MalformedBody(f"malformed CSV: {err}") from None
    return Rows(frame.to_numpy().tolist(), [str(c) for c in frame.columns], "csv")


def mlflow_response(outputs: Outputs) -> dict[str, Any]:
    return {"predictions": to_mlflow(outputs)}


def dumps(document: Any) -> bytes:
    return json_codec.dumps(document)
