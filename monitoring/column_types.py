"""The type Evidently gives a column (`evidently.core.datasets.infer_column_type`, from the
*current* data), which decides the test `auto` picks; pure."""

from __future__ import annotations

from enum import StrEnum

import pandas as pd

INTEGER_CARDINALITY_LIMIT = 10  # evidently.core.datasets


class ColumnType(StrEnum):
    NUMERICAL = "num"
    CATEGORICAL = "cat"
    TEXT = "text"
    DATETIME = "datetime"
    LIST = "list"
    UNKNOWN = "unknown"


def infer_column_type(column: pd.Series, *, strings: bool = False) -> ColumnType:
    """Evidently's type of a column (it types the *current* data). `strings`: a category
    column that holds a string column as read (dictionary-encoded), typed as the strings."""
    name = column.dtype.name
    if strings and name == "category":
        name = "string"
    if name.startswith("float"):
        return ColumnType.NUMERICAL
    if name.startswith("int"):
        if column.nunique() <= INTEGER_CARDINALITY_LIMIT:
            return ColumnType.CATEGORICAL
        return ColumnType.NUMERICAL
    if name in ("string", "str"):
        if column.nunique() > column.count() * 0.5:
            return ColumnType.TEXT
        return ColumnType.CATEGORICAL
    if name == "object":
        present = column.dropna()
        if present.count() == 0:
            return ColumnType.UNKNOWN
        first, last = present.iloc[0], present.iloc[-1]
        if isinstance(first, str) and isinstance(last, str):
            if column.nunique() > column.count() * 0.5:
                return ColumnType.TEXT
            return ColumnType.CATEGORICAL
        if isinstance(first, list | tuple) and isinstance(last, list | tuple):
            return ColumnType.LIST
        return ColumnType.UNKNOWN
    if name in ("bool", "category"):
        return ColumnType.CATEGORICAL
    if name.startswith("datetime"):
        return ColumnType.DATETIME
    # Nullable extension dtypes (Int64, Float64, boolean) Evidently leaves untyped.
    if pd.api.types.is_float_dtype(column.dtype):
        return ColumnType.NUMERICAL
    if pd.api.types.is_integer_dtype(column.dtype):
        return infer_column_type(column.astype("float64").dropna().astype("int64"))
    if pd.api.types.is_bool_dtype(column.dtype):
        return ColumnType.CATEGORICAL
    return ColumnType.UNKNOWN
