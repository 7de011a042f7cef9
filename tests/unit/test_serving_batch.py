"""`maestro predict-batch`'s chunked predict over CSV and parquet files, with a model built
in the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from maestro.serving.batch import BatchError, predict_file
from maestro.serving.loader import LoadedModel, Predict
from maestro.serving.schema import Column, InputSchema, Rows

pytestmark = pytest.mark.unit


def model(predict: Predict) -> LoadedModel:
    schema = InputSchema(columns=(Column("a", "double"), Column("b", "long")))
    return LoadedModel(
        name="m",
        uri="file:///m",
        version="",
        flavor="sklearn",
        schema=schema,
        predict=predict,
        convention="numpy",
        example=Rows([[0.0, 0]], ["a", "b"], "example"),
    )


def frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame(
        {"id": [f"r{i}" for i in range(rows)], "b": np.arange(rows), "a": np.arange(rows) / 2}
    )


def test_csv_in_chunks_to_parquet_with_the_prediction_appended(tmp_path: Path) -> None:
    calls: list[int] = []

    def predict(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        calls.append(len(array))
        return array[:, 0] + array[:, 1]  # columns come in signature order: a, b

    source = tmp_path / "in.csv"
    frame(25).to_csv(source, index=False)
    result = predict_file(
        model(predict), source, tmp_path / "out.parquet", chunk_size=10, progress=False
    )
    assert (result.rows, result.chunks, calls) == (25, 3, [10, 10, 5])
    written = pd.read_parquet(tmp_path / "out.parquet")
    assert list(written.columns) == ["id", "b", "a", "prediction"]
    np.testing.assert_allclose(written["prediction"], written["a"] + written["b"])


def test_two_dimensional_outputs_become_one_column_each(tmp_path: Path) -> None:
    source = tmp_path / "in.parquet"
    frame(4).to_parquet(source)
    proba = model(lambda a: np.column_stack([1 - a[:, 0] / 10, a[:, 0] / 10]))
    result = predict_file(proba, source, tmp_path / "out.parquet", prefix="p", progress=False)
    assert result.columns == ["p_0", "p_1"]
    assert pd.read_parquet(tmp_path / "out.parquet")["p_1"].tolist() == [0.0, 0.05, 0.1, 0.15]


def test_a_bad_value_names_its_column_and_rows(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    bad = frame(6)
    bad["b"] = bad["b"].astype(object)
    bad.loc[4, "b"] = "four"
    bad.to_csv(source, index=False)
    with pytest.raises(BatchError, match=r"row 4: b: expected long, got 'four'"):
        predict_file(
            model(lambda a: a[:, 0]), source, tmp_path / "o.parquet", chunk_size=3, progress=False
        )


def test_input_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(BatchError, match="no such file"):
        predict_file(
            model(lambda a: a), tmp_path / "x.parquet", tmp_path / "o.parquet", progress=False
        )
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(BatchError, match=r"expected a \.parquet or \.csv"):
        predict_file(
            model(lambda a: a), tmp_path / "x.json", tmp_path / "o.parquet", progress=False
        )
