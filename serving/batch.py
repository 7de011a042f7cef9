"""`maestro predict-batch`: the serving loader over a parquet or CSV file, in chunks, with a
progress bar on stderr; writes parquet with the prediction column(s) appended."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maestro.serving.errors import InputError, LoadError
from maestro.serving.loader import LoadedModel
from maestro.serving.outputs import OutputError, Outputs, normalise
from maestro.serving.schema import NUMERIC_TYPES, Rows

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
DEFAULT_CHUNK = 10_000


class BatchError(Exception):
    """Bad input to the batch job (file, columns, values); the message says what to fix."""


@dataclass(frozen=True)
class BatchResult:
    rows: int
    chunks: int
    seconds: float
    output: Path
    columns: list[str]


def read_chunks(path: Path, chunk_size: int) -> tuple[Iterator[Any], int | None]:
    """DataFrame chunks of the input file and its row count (None when unknown up front)."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise BatchError(f"--input {path}: no such file")
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        source = pq.ParquetFile(path)
        batches = source.iter_batches(batch_size=chunk_size)
        return (b.to_pandas() for b in batches), source.metadata.num_rows
    if suffix in (".csv", ".txt"):
        import pandas as pd

        return iter(pd.read_csv(path, chunksize=chunk_size)), None
    raise BatchError(f"--input {path}: expected a .parquet or .csv file")


def prediction_columns(outputs: Outputs, prefix: str) -> dict[str, np.ndarray[Any, Any]]:
    """The columns appended to the output: `prefix` for one 1-D output, `prefix_<i>` per
    column of a 2-D one (probabilities), `<name>` for named outputs (DataFrame, dict)."""
    columns: dict[str, np.ndarray[Any, Any]] = {}
    single = len(outputs.arrays) == 1 and not outputs.tabular
    for name, array in zip(outputs.names, outputs.arrays, strict=True):
        base = prefix if single else name
        if array.ndim == 1:
            columns[base] = array
        else:
            flat = array.reshape(len(array), -1)
            for i in range(flat.shape[1]):
                columns[f"{base}_{i}"] = flat[:, i]
    return columns


def _numbers_from_text(frame: Any, model: LoadedModel, source: Path, offset: int) -> None:
    """CSV chunks holding one non-number in a numeric column arrive as text: read the
    numbers back, and report the value that is not one by its row in the file."""
    import pandas as pd

    for column in model.schema.columns:
        if column.type not in NUMERIC_TYPES or column.name not in frame:
            continue
        values = frame[column.name]
        if values.dtype != object:
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values[numbers.isna() & values.notna()]
        if len(bad):
            row = offset + int(np.flatnonzero(numbers.isna() & values.notna())[0])
            raise BatchError(
                f"{source} row {row}: {column.name}: expected {column.type}, got {bad.iloc[0]!r}"
            )
        frame[column.name] = numbers


def predict_file(
    model: LoadedModel,
    source: Path,
    output: Path,
    *,
    chunk_size: int = DEFAULT_CHUNK,
    prefix: str = "prediction",
    progress: bool = True,
) -> BatchResult:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    if chunk_size < 1:
        raise BatchError(f"--chunk-size must be at least 1, got {chunk_size}")
    chunks, total = read_chunks(source, chunk_size)
    started = time.perf_counter()
    writer: pq.ParquetWriter | None = None
    rows = count = 0
    added: list[str] = []
    output.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=total, unit="rows", file=sys.stderr, disable=not progress, desc=source.name)
    try:
        for frame in chunks:
            _numbers_from_text(frame, model, source, rows)
            payload = Rows(frame.to_numpy().tolist(), [str(c) for c in frame.columns], "input")
            try:
                array = model.to_array(payload)
            except InputError as err:
                raise BatchError(f"{source} rows {rows}-{rows + len(frame) - 1}: {err}") from None
            try:
                outputs = normalise(model.predict(array), len(array), model.output_name)
            except OutputError as err:
                raise BatchError(f"{model.uri}: {err}") from None
            columns = prediction_columns(outputs, prefix)
            clash = sorted(set(columns) & {str(c) for c in frame.columns})
            if clash:
                raise BatchError(
                    f"prediction column(s) {', '.join(clash)} already exist in the input;"
                    " choose another --prediction-column"
                )
            for name, values in columns.items():
                frame[name] = values
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(output, table.schema)
                added = list(columns)
            writer.write_table(table)
            rows += len(frame)
            count += 1
            bar.update(len(frame))
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    if writer is None:
        raise BatchError(f"--input {source}: no rows")
    return BatchResult(rows, count, time.perf_counter() - started, output, added)


def run(
    model_uri: str,
    source: Path,
    output: Path,
    *,
    chunk_size: int,
    prefix: str,
    tracking_uri: str = "",
) -> int:
    """The CLI's job: load, predict the file, print a JSON summary; exit 0, 1 or 2."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    try:
        import mlflow

        from maestro.serving.loader import load_model
        from maestro.training.mlflow_plugins import load_mlflow_plugins_without_feast

        load_mlflow_plugins_without_feast()
        if tracking_uri:
            mlflow.set_tracking_uri(tracking_uri)
        model = load_model("model", model_uri)
        result = predict_file(model, source, output, chunk_size=chunk_size, prefix=prefix)
    except (BatchError, LoadError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as err:
        log.exception("batch prediction failed")
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return EXIT_FAILED
    summary = {
        "rows": result.rows,
        "chunks": result.chunks,
        "seconds": round(result.seconds, 3),
        "output": str(result.output),
        "columns": result.columns,
        "model_uri": model_uri,
        "model_version": model.version,
        "convention": model.convention,
    }
    print(json.dumps(summary))
    return EXIT_OK
