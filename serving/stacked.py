"""Columns given as one 2-D array, one row per named input: what a v2 request (JSON or
gRPC) with one input per signature column, all of one numeric datatype, becomes.

The array is kept whole (`Columns.stacked`), so the model's input is one transpose when the
inputs come in the signature's order (schema._columns_matrix); the per-name views and the
`inputs[j]` field names that error messages use are made only when something asks."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from maestro.serving.schema import Columns


class _Positions:
    __slots__ = ("_positions", "names")

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self._positions: dict[str, int] | None = None

    def position(self, name: str) -> int:
        if self._positions is None:
            self._positions = {n: j for j, n in enumerate(self.names)}
        return self._positions[name]


class StackedValues(Mapping[str, Any]):
    """name -> that input's values: a row of the stacked array."""

    __slots__ = ("_at", "matrix")

    def __init__(self, at: _Positions, matrix: np.ndarray[Any, Any]) -> None:
        self._at = at
        self.matrix = matrix

    def __getitem__(self, name: str) -> np.ndarray[Any, Any]:
        row: np.ndarray[Any, Any] = self.matrix[self._at.position(name)]
        return row

    def __iter__(self) -> Iterator[str]:
        return iter(self._at.names)

    def __len__(self) -> int:
        return len(self._at.names)


class InputFields(Mapping[str, str]):
    """name -> where it is in the request (`inputs[j]`), for error messages."""

    __slots__ = ("_at", "_field")

    def __init__(self, at: _Positions, field: str) -> None:
        self._at = at
        self._field = field

    def __getitem__(self, name: str) -> str:
        return f"{self._field}[{self._at.position(name)}]"

    def __iter__(self) -> Iterator[str]:
        return iter(self._at.names)

    def __len__(self) -> int:
        return len(self._at.names)


def stacked_columns(names: list[str], matrix: np.ndarray[Any, Any], field: str) -> Columns:
    """`matrix` has one row per name, in order; the names are distinct."""
    at = _Positions(names)
    return Columns(StackedValues(at, matrix), field, InputFields(at, field), matrix)


def column_rows(shapes: list[Any]) -> int | None:
    """n when every shape is [n] or [n, 1] (one value per row, as a column is sent) for the
    same integer n, else None."""
    first = shapes[0]
    if type(first) is not list or not first or type(first[0]) is not int or first[0] < 0:
        return None
    rows: int = first[0]
    if first[1:] not in ([], [1]):
        return None
    if shapes.count(first) == len(shapes):  # all alike, the common case: one C-level pass
        return rows
    accepted = ([rows], [rows, 1])
    return rows if all(shape in accepted for shape in shapes) else None


def distinct_names(names: list[Any]) -> bool:
    """Every name a non-empty string, none twice (False for no names)."""
    # set(map(type, ...)) rather than all(... for ...): no generator frame per name.
    if set(map(type, names)) != {str} or "" in names:
        return False
    return len(set(names)) == len(names)
