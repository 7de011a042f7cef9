"""A model's answer for a batch, split back per request and written in each protocol's form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_OUTPUT = "predict"

# Open Inference Protocol v2 datatypes by NumPy dtype kind and size.
_V2_TYPES = {
    ("b", 1): "BOOL",
    ("i", 1): "INT8",
    ("i", 2): "INT16",
    ("i", 4): "INT32",
    ("i", 8): "INT64",
    ("u", 1): "UINT8",
    ("u", 2): "UINT16",
    ("u", 4): "UINT32",
    ("u", 8): "UINT64",
    ("f", 2): "FP16",
    ("f", 4): "FP32",
    ("f", 8): "FP64",
}

# By MLflow column type (signatures of DataFrame inputs and outputs).
V2_BY_COLUMN_TYPE = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """One output as the v2 model metadata reports it (-1: any length)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


class OutputError(ValueError):
    """The model's answer cannot be split per request (wrong length, a scalar...)."""


@dataclass(frozen=True, slots=True)
class Outputs:
    """Named arrays of equal length along axis 0; `tabular` when they came from a DataFrame
    (the MLflow protocol then answers records)."""

    names: tuple[str, ...]
    arrays: tuple[np.ndarray[Any, Any], ...]
    tabular: bool = False

    def __len__(self) -> int:
        return len(self.arrays[0]) if self.arrays else 0

    def slice(self, start: int, stop: int) -> Outputs:
        if start == 0 and stop == len(self):
            return self
        return Outputs(self.names, tuple(a[start:stop] for a in self.arrays), self.tabular)

    def first(self) -> np.ndarray[Any, Any]:
        return self.arrays[0]


def normalise(raw: Any, rows: int, default_name: str = DEFAULT_OUTPUT) -> Outputs:
    """Whatever a predict returned (ndarray, list, Series, DataFrame, dict of arrays) as
    Outputs with `rows` rows."""
    tabular = False
    if isinstance(raw, np.ndarray):
        named = [(default_name, raw)]
    elif isinstance(raw, Mapping):
        named = [(str(k), np.asarray(v)) for k, v in raw.items()]
    elif hasattr(raw, "columns") and hasattr(raw, "to_numpy"):  # pandas.DataFrame
        named = [(str(c), raw[c].to_numpy()) for c in raw.columns]
        tabular = True
    elif hasattr(raw, "to_numpy"):  # pandas.Series
        named = [(str(raw.name) if raw.name is not None else default_name, raw.to_numpy())]
    else:
        named = [(default_name, np.asarray(raw))]
    for name, array in named:
        if array.ndim == 0 or len(array) != rows:
            got = "a scalar" if array.ndim == 0 else f"{len(array)} rows"
            raise OutputError(f"the model returned {got} in {name!r} for {rows} input rows")
    return Outputs(tuple(n for n, _ in named), tuple(a for _, a in named), tabular)


def v2_datatype(dtype: np.dtype[Any]) -> str:
    return _V2_TYPES.get((dtype.kind, dtype.itemsize), "BYTES")


def _plain(array: np.ndarray[Any, Any]) -> list[Any]:
    if array.dtype.kind == "M":
        return (
            [str(v) for v in array.reshape(-1)] if array.ndim != 1 else array.astype(str).tolist()
        )
    if array.dtype.kind == "S":
        return np.char.decode(array, "utf-8").tolist()  # type: ignore[no-any-return]
    return array.tolist()  # type: ignore[no-any-return]


def v2_tensor(name: str, array: np.ndarray[Any, Any]) -> dict[str, Any]:
    """One output as a v2 JSON tensor (row-major flat data)."""
    return {
        "name": name,
        "shape": list(array.shape),
        "datatype": v2_datatype(array.dtype),
        "data": _plain(array.reshape(-1)),
    }


def to_v2(outputs: Outputs) -> list[dict[str, Any]]:
    """Outputs as v2 output tensors (row-major flat data)."""
    return [v2_tensor(n, a) for n, a in zip(outputs.names, outputs.arrays, strict=True)]


def to_mlflow(outputs: Outputs) -> Any:
    """The `predictions` value of MLflow's scoring protocol: a list for one output, records
    for a DataFrame, an object of lists for several named outputs."""
    if len(outputs.arrays) == 1 and not outputs.tabular:
        return _plain(outputs.arrays[0])
    columns = [_plain(a) for a in outputs.arrays]
    if outputs.tabular:
        return [dict(zip(outputs.names, row, strict=True)) for row in zip(*columns, strict=True)]
    return dict(zip(outputs.names, columns, strict=True))
