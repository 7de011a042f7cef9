"""What a model accepts, and how one request's payload becomes a validated NumPy array.

Pure NumPy, no pandas and no MLflow on this path: MLflow's own schema enforcement builds a
DataFrame per call and costs about 2 ms, ten times a small sklearn pipeline's predict. A
column-based signature whose columns are all numeric becomes one float64 array in signature
column order (one `np.asarray` per request, a type check on its dtype); only when that check
fails does a slower pass look for the value to blame, so errors name the column and row.
Signatures with string, boolean or datetime columns give an object array checked per value.

Over 400 lines on purpose, not split: the fast path and the slow pass that names the
column and row to blame must agree value for value, and they stay side by side so that a
change to one is made to the other.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from maestro.serving.errors import InputError

# MLflow DataType names, by what a value must be.
FLOAT_TYPES = frozenset({"double", "float"})
INTEGER_TYPES = frozenset({"long", "integer"})
NUMERIC_TYPES = FLOAT_TYPES | INTEGER_TYPES
KNOWN_TYPES = NUMERIC_TYPES | {"boolean", "string", "binary", "datetime"}


@dataclass(frozen=True)
class Column:
    """One named input column of a model signature."""

    name: str
    type: str
    required: bool = True


@dataclass(frozen=True)
class TensorInput:
    """A tensor-based signature's single input: dtype and shape (-1 = any length)."""

    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    name: str = ""


@dataclass(frozen=True)
class InputSchema:
    """A model's inputs: named columns, or one tensor. Neither means no signature."""

    columns: tuple[Column, ...] = ()
    tensor: TensorInput | None = None

    @cached_property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def numeric(self) -> bool:
        return bool(self.columns) and all(c.type in NUMERIC_TYPES for c in self.columns)


# --- payloads: what the protocols parse a request into --------------------------------------
# `field` is where the payload came from in the request, for error messages.


@dataclass(slots=True)
class Rows:
    """Row-major values; `names` gives their columns (dataframe_split), None = positional."""

    data: Any
    names: Sequence[str] | None
    field: str


@dataclass(slots=True)
class Records:
    """One mapping of column -> value per row (dataframe_records, instances of objects)."""

    data: list[Any]
    field: str


@dataclass(slots=True)
class Columns:
    """Column-major values: column name -> values (v2 per-column inputs, `inputs` objects)."""

    data: Mapping[str, Any]
    field: str
    fields: Mapping[str, str] | None = None
    # The values as one 2-D array, one row per key of `data` in its order (serving.stacked).
    stacked: np.ndarray[Any, Any] | None = None


@dataclass(slots=True)
class Tensor:
    """One nested array, with the shape the client declared (v2) or None (instances)."""

    data: Any
    shape: Sequence[int] | None
    field: str
    dtype: np.dtype[Any] | None = None


Payload = Rows | Records | Columns | Tensor


# --- validation ------------------------------------------------------------------------------


def to_array(schema: InputSchema, payload: Payload) -> np.ndarray[Any, Any]:
    """The payload as the model's input array: 2-D in signature column order for column
    signatures (float64 when all columns are numeric, else object), the declared dtype and
    shape for a tensor signature, and as given when the model has no signature."""
    if isinstance(payload.data, list) and not payload.data:
        raise InputError(payload.field, "no rows to predict")
    if schema.columns:
        array = _columns_array(schema, payload)
    elif schema.tensor is not None:
        array = _tensor_array(schema.tensor, payload)
    else:
        array = _unsigned_array(payload)
    if array.ndim == 0 or array.shape[0] == 0:
        raise InputError(payload.field, "no rows to predict")
    return array


def _columns_array(schema: InputSchema, payload: Payload) -> np.ndarray[Any, Any]:
    names = schema.names
    field = payload.field
    if isinstance(payload, Records):
        return _typed(schema, _records_matrix(schema, payload), field)
    if isinstance(payload, Columns):
        return _typed(schema, _columns_matrix(schema, payload), field)
    if isinstance(payload, Rows) and payload.names is not None:
        return _named_rows(schema, payload)
    data = payload.data
    if not isinstance(data, list | np.ndarray):
        raise InputError(field, f"expected a list of rows, got {_kind(data)}")
    matrix = _matrix(data, field)
    if isinstance(payload, Tensor) and payload.shape is not None:
        matrix = _reshape(matrix, payload.shape, field)
    if matrix.ndim == 1 and len(names) == 1:
        matrix = matrix.reshape(-1, 1)
    elif matrix.ndim == 1 and matrix.dtype != object and matrix.size == len(names):
        matrix = matrix.reshape(1, -1)  # one row given without the outer list
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise InputError(
            _shape_field(payload),
            f"shape {list(matrix.shape)} does not fit the model's {len(names)} columns"
            f" [n, {len(names)}] ({_preview(names)})",
        )
    return _typed(schema, matrix, field)


def _named_rows(schema: InputSchema, payload: Rows) -> np.ndarray[Any, Any]:
    field = payload.field
    given = list(payload.names or ())
    if not all(isinstance(n, str) for n in given):
        raise InputError(f"{field}.columns", "column names must be strings")
    if not isinstance(payload.data, list):
        raise InputError(f"{field}.data", f"expected a list of rows, got {_kind(payload.data)}")
    matrix = _matrix(payload.data, f"{field}.data", width=len(given))
    if matrix.ndim == 1 and matrix.size == 0:
        matrix = matrix.reshape(0, len(given))
    if matrix.ndim != 2 or matrix.shape[1] != len(given):
        raise InputError(
            f"{field}.data",
            f"shape {list(matrix.shape)} does not match the {len(given)} columns given",
        )
    position = {name: i for i, name in enumerate(given)}
    order: list[int] = []
    for column in schema.columns:
        index = position.get(column.name)
        if index is None:
            if column.required:
                raise InputError(column.name, f"missing required column (in {field}.columns)")
            index = -1
        order.append(index)
    if order != list(range(len(given))):
        missing = [i for i, index in enumerate(order) if index < 0]
        picked = matrix[:, [max(i, 0) for i in order]]
        if missing:
            picked = picked.astype(object)
            picked[:, missing] = None
        matrix = picked
    return _typed(schema, matrix, f"{field}.data")


def _records_matrix(schema: InputSchema, payload: Records) -> np.ndarray[Any, Any]:
    names = schema.names
    required = [c.required for c in schema.columns]
    rows: list[list[Any]] = []
    for i, record in enumerate(payload.data):
        if not isinstance(record, dict):
            raise InputError(f"{payload.field}[{i}]", f"expected an object, got {_kind(record)}")
        try:
            rows.append([record[name] for name in names])
        except KeyError:
            row = []
            for name, needed in zip(names, required, strict=True):
                if name not in record and needed:
                    raise InputError(
                        name, f"missing required column (in {payload.field}[{i}])"
                    ) from None
                row.append(record.get(name))
            rows.append(row)
    return _matrix(rows, payload.field, width=len(names))


def _columns_matrix(schema: InputSchema, payload: Columns) -> np.ndarray[Any, Any]:
    if payload.stacked is not None:
        given = list(payload.data)
        if given == schema.names:
            return payload.stacked.T
        if set(schema.names) <= set(given):
            order = {name: j for j, name in enumerate(given)}
            return payload.stacked[[order[name] for name in schema.names]].T
    values: list[Any] = []
    length: int | None = None
    for column in schema.columns:
        field = (payload.fields or {}).get(column.name, column.name)
        if column.name not in payload.data:
            if column.required:
                raise InputError(column.name, f"missing required column (in {payload.field})")
            values.append(None)
            continue
        data = payload.data[column.name]
        if isinstance(data, np.ndarray):
            data = data.reshape(-1) if data.ndim == 2 and data.shape[1] == 1 else data
        elif (
            isinstance(data, list)
            and data
            and all(isinstance(v, list) and len(v) == 1 for v in data)
        ):
            # [[v], [v], ...]: one value per row, as clients often send a column of shape [n, 1].
            data = [v[0] for v in data]
        if not isinstance(data, list | np.ndarray) or (
            isinstance(data, np.ndarray) and data.ndim != 1
        ):
            raise InputError(field, f"expected one value per row, got {_kind(data)}")
        if length is None:
            length = len(data)
        elif len(data) != length:
            raise InputError(field, f"has {len(data)} values where other columns have {length}")
        values.append(data)
    rows = length or 0
    filled: list[Any] = [[None] * rows if v is None else v for v in values]
    if all(isinstance(v, np.ndarray) and v.dtype.kind in "fiu" for v in filled):
        return np.column_stack(filled) if filled else np.empty((0, 0))
    matrix = np.empty((rows, len(filled)), dtype=object)
    for j, column_values in enumerate(filled):
        matrix[:, j] = list(column_values)
    return matrix


def _typed(schema: InputSchema, matrix: np.ndarray[Any, Any], field: str) -> np.ndarray[Any, Any]:
    """Check the values against the column types; the fast path is one dtype check."""
    if schema.numeric:
        if matrix.dtype.kind in "fiu":
            result = matrix if matrix.dtype == np.float64 else matrix.astype(np.float64)
            if matrix.dtype.kind == "f" and any(c.type in INTEGER_TYPES for c in schema.columns):
                _check_integral(schema, result)
            return result
        _find_bad_value(schema, matrix, field)
        try:
            return np.array(matrix, dtype=np.float64)
        except (TypeError, ValueError) as err:  # pragma: no cover - _find_bad_value raises first
            raise InputError(field, str(err)) from None
    matrix = matrix.astype(object) if matrix.dtype != object else matrix
    _find_bad_value(schema, matrix, field)
    return matrix


def _check_integral(schema: InputSchema, matrix: np.ndarray[Any, Any]) -> None:
    for j, column in enumerate(schema.columns):
        if column.type in INTEGER_TYPES:
            values = matrix[:, j]
            bad = np.flatnonzero(values != np.floor(values))
            if bad.size:
                i = int(bad[0])
                raise InputError(
                    column.name,
                    f"expected {column.type}, got {values[i]!r} (row {i})",
                )


def _find_bad_value(schema: InputSchema, matrix: np.ndarray[Any, Any], field: str) -> None:
    """Raise for the first value that does not fit its column; None is allowed only in
    optional columns."""
    if matrix.ndim != 2 or matrix.shape[1] != len(schema.columns):
        raise InputError(field, f"shape {list(matrix.shape)} does not fit the model's columns")
    for j, column in enumerate(schema.columns):
        accepts = _ACCEPTS[column.type]
        for i, value in enumerate(matrix[:, j]):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                if column.required and value is None:
                    raise InputError(column.name, f"missing value (null) in row {i}")
                continue
            if not accepts(value):
                raise InputError(
                    column.name,
                    f"expected {column.type}, got {_kind(value)} {_short(value)} (row {i})",
                )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def _is_integer(value: Any) -> bool:
    return _is_number(value) and float(value).is_integer()


def _is_datetime(value: Any) -> bool:
    if isinstance(value, np.datetime64):
        return True
    if not isinstance(value, str):
        return False
    try:
        np.datetime64(value)
    except ValueError:
        return False
    return True


_ACCEPTS = {
    "double": _is_number,
    "float": _is_number,
    "long": _is_integer,
    "integer": _is_integer,
    "boolean": lambda v: isinstance(v, bool | np.bool_),
    "string": lambda v: isinstance(v, str),
    "binary": lambda v: isinstance(v, str | bytes),
    "datetime": _is_datetime,
}


def _tensor_array(spec: TensorInput, payload: Payload) -> np.ndarray[Any, Any]:
    field = payload.field
    if isinstance(payload, Columns):
        if len(payload.data) != 1:
            raise InputError(field, "the model takes one tensor; send a single input")
        data = next(iter(payload.data.values()))
    elif isinstance(payload, Records):
        raise InputError(field, "the model takes a tensor, not named columns")
    else:
        data = payload.data
    array = data if isinstance(data, np.ndarray) else _matrix(data, field)
    if isinstance(payload, Tensor) and payload.shape is not None:
        array = _reshape(array, payload.shape, field)
    if array.ndim == len(spec.shape) - 1:
        array = array[np.newaxis, ...]  # one example without the batch dimension
    fits = array.ndim == len(spec.shape) and all(
        want in (-1, got) for want, got in zip(spec.shape, array.shape, strict=True)
    )
    if not fits:
        raise InputError(
            _shape_field(payload),
            f"shape {list(array.shape)} does not fit the model's input shape {list(spec.shape)}",
        )
    kind = spec.dtype.kind
    allowed = {"f": "fiu", "i": "iu", "u": "u", "b": "b", "U": "UO", "S": "USO", "O": "OUS"}
    if array.dtype.kind not in allowed.get(kind, kind):
        if kind in "iu" and array.dtype.kind == "f" and np.all(array == np.floor(array)):
            return array.astype(spec.dtype)
        raise InputError(
            field, f"expected {spec.dtype.name} values, got {_dtype_kind(array.dtype)} values"
        )
    return array if array.dtype == spec.dtype else array.astype(spec.dtype)


def _unsigned_array(payload: Payload) -> np.ndarray[Any, Any]:
    """Without a signature: the values as NumPy makes them (column names are not checked)."""
    if isinstance(payload, Records):
        if not payload.data or not isinstance(payload.data[0], dict):
            raise InputError(payload.field, "expected a list of objects")
        names = list(payload.data[0])
        rows = [[r.get(n) for n in names] if isinstance(r, dict) else r for r in payload.data]
        return _matrix(rows, payload.field)
    if isinstance(payload, Columns):
        return np.column_stack([np.asarray(v) for v in payload.data.values()])
    array = _matrix(payload.data, payload.field)
    if isinstance(payload, Tensor) and payload.shape is not None:
        array = _reshape(array, payload.shape, payload.field)
    return array


# --- helpers ---------------------------------------------------------------------------------


def _matrix(data: Any, field: str, width: int | None = None) -> np.ndarray[Any, Any]:
    """`np.asarray` when the values are numbers or booleans (the fast path); otherwise an
    object array that keeps each value's own type (NumPy would turn `[1.5, "a"]` into two
    strings and hide which value is wrong), with ragged rows reported by row."""
    if isinstance(data, np.ndarray):
        return data
    try:
        array: np.ndarray[Any, Any] | None = np.asarray(data)
    except ValueError:
        array = None
    if array is not None and array.dtype.kind in "fiub":
        return array
    if isinstance(data, list) and data and all(isinstance(row, list) for row in data):
        expected = width if width is not None else len(data[0])
        for i, row in enumerate(data):
            if len(row) != expected:
                raise InputError(f"{field}[{i}]", f"has {len(row)} values, expected {expected}")
        if not any(isinstance(v, list | dict) for row in data for v in row):
            rows: np.ndarray[Any, Any] = np.empty((len(data), expected), dtype=object)
            for i, row in enumerate(data):
                rows[i, :] = row
            return rows
    elif isinstance(data, list) and not any(isinstance(v, list | dict) for v in data):
        values: np.ndarray[Any, Any] = np.empty(len(data), dtype=object)
        values[:] = data
        return values
    if array is None:
        raise InputError(field, "values do not form a rectangular array")
    return array


def _reshape(array: np.ndarray[Any, Any], shape: Sequence[int], field: str) -> np.ndarray[Any, Any]:
    if list(array.shape) == list(shape):
        return array
    try:
        return array.reshape(shape)
    except ValueError:
        raise InputError(
            f"{field}.shape",
            f"{list(shape)} does not match the {array.size} values in {field}.data",
        ) from None


def _shape_field(payload: Payload) -> str:
    return (
        f"{payload.field}.shape"
        if isinstance(payload, Tensor) and payload.shape
        else (payload.field)
    )


def _kind(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | np.integer):
        return "integer"
    if isinstance(value, float | np.floating):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | np.ndarray):
        return "array"
    if value is None:
        return "null"
    return type(value).__name__


def _dtype_kind(dtype: np.dtype[Any]) -> str:
    return {"U": "string", "S": "bytes", "O": "mixed", "b": "boolean", "f": "float"}.get(
        dtype.kind, dtype.name
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _preview(names: Sequence[str]) -> str:
    shown = ", ".join(names[:5])
    return shown + (f", ... {len(names) - 5} more" if len(names) > 5 else "")
