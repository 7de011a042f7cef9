"""Dataset URIs -> pandas DataFrames, and the split every trainer (and every trial) shares.

Supported URIs: `sklearn://<name>` for the datasets scikit-learn ships, local parquet/CSV
(`file://` or a plain path), and `s3://<bucket>/<key>` read through maestro.storage from
the object store the AWS_* variables name (the Secret `maestro-objectstore` in the
cluster): one parquet/CSV object, or a prefix whose parquet objects are the parts of one
dataset. Loading is I/O; the splitting below is pure.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import pandas as pd

from maestro.training.errors import TrainingError

# scikit-learn's bundled datasets (no download): URI name -> loader function in sklearn.datasets.
SKLEARN_DATASETS = {
    "iris": "load_iris",
    "wine": "load_wine",
    "breast_cancer": "load_breast_cancer",
    "digits": "load_digits",
    "diabetes": "load_diabetes",
}
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")
# pandas infers compression from a path's suffix, not from a buffer's.
CSV_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
DEFAULT_TARGET = "target"


class Task(StrEnum):
    """What the target asks for; picks the estimator class and the metrics."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"


def load_frame(uri: str) -> pd.DataFrame:
    """Read the dataset at `uri` into a DataFrame (all columns, target included)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "sklearn":
        return _load_sklearn(parts.netloc or parts.path.strip("/"))
    if scheme == "s3":
        return _read_s3(uri)
    if scheme == "file":
        # file:///abs/path and file://relative/path both name a local file.
        return _read_local(Path(unquote(parts.netloc + parts.path)), uri)
    # A single letter is a Windows drive, not a scheme.
    if scheme and len(scheme) > 1:
        raise TrainingError(
            f"unsupported dataset URI scheme {scheme!r} in {uri}:"
            " use sklearn://<name>, file://<path>, a plain path or s3://<bucket>/<key>"
        )
    return _read_local(Path(uri), uri)


def _load_sklearn(name: str) -> pd.DataFrame:
    loader = SKLEARN_DATASETS.get(name)
    if loader is None:
        raise TrainingError(
            f"unknown scikit-learn dataset {name!r}; choose one of: {', '.join(SKLEARN_DATASETS)}"
        )
    from sklearn import datasets

    bunch = getattr(datasets, loader)(as_frame=True)
    frame = bunch.frame
    assert isinstance(frame, pd.DataFrame)
    return frame


def _read_local(path: Path, uri: str) -> pd.DataFrame:
    if not path.exists():
        raise TrainingError(f"dataset not found: {uri} (no such file {path})")
    if path.is_dir():
        # A folder is a partitioned parquet dataset, as Spark and Feast write them.
        return _read_parquet(str(path), uri)
    return _read_table(str(path), uri)


def _read_s3(uri: str) -> pd.DataFrame:
    """One object by its key's suffix, or the parquet objects under a prefix (a key with
    no table suffix, or ending in /): a partitioned dataset, as Spark and Feast write.
    boto3 is imported only here: most runs read no s3:// dataset."""
    from maestro.storage.objectstore import (
        ObjectNotFound,
        ObjectStore,
        ObjectStoreUnavailable,
        parse_s3_uri,
    )

    try:
        _, key = parse_s3_uri(uri)
    except ValueError as err:
        raise TrainingError(f"invalid dataset URI: {err}") from err
    store = ObjectStore.from_env()
    try:
        if key and key.lower().endswith(PARQUET_SUFFIXES + CSV_SUFFIXES):
            return _read_table(io.BytesIO(store.get_bytes(uri)), uri, name=key)
        prefix = uri if uri.endswith("/") else f"{uri}/"
        parts = [o for o in store.list(prefix) if o.uri.lower().endswith(PARQUET_SUFFIXES)]
        if not parts:
            raise TrainingError(
                f"dataset not found: {uri} (no parquet objects under {prefix}; name a single"
                " object *.parquet, *.pq or *.csv)"
            )
        frames = [_read_parquet(io.BytesIO(store.get_bytes(o.uri)), o.uri) for o in parts]
    except ObjectNotFound as err:
        raise TrainingError(f"dataset not found: {err}") from err
    except ObjectStoreUnavailable as err:
        raise TrainingError(f"cannot read dataset {uri}: {err}") from err
    return pd.concat(frames, ignore_index=True)


def _read_table(source: str | IO[bytes], uri: str, name: str | None = None) -> pd.DataFrame:
    """A parquet or CSV table from a path or a buffer; `name` (by default the path) tells
    the format by its suffix."""
    lowered = (name or str(source)).lower()
    if lowered.endswith(PARQUET_SUFFIXES):
        return _read_parquet(source, uri)
    if lowered.endswith(CSV_SUFFIXES):
        compression = next(
            (c for suffix, c in CSV_COMPRESSION.items() if lowered.endswith(suffix)), None
        )
        try:
            return pd.read_csv(source, compression=compression or "infer")
        except (OSError, ValueError) as err:
            raise TrainingError(f"cannot read CSV dataset {uri}: {err}") from err
    raise TrainingError(
        f"cannot tell the format of {uri}: name it *.parquet, *.pq or *.csv (optionally .gz)"
    )


def _read_parquet(source: str | IO[bytes], uri: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(source)
    except (OSError, ValueError) as err:
        raise TrainingError(f"cannot read parquet dataset {uri}: {err}") from err


def infer_task(target: pd.Series) -> Task:
    """Floats are regressed; integers, booleans, strings and categories are classes.

    diabetes (sklearn) has integer-valued floats and is a regression, so the dtype, not the
    values, decides; `params.task` overrides it.
    """
    if pd.api.types.is_float_dtype(target):
        return Task.REGRESSION
    return Task.CLASSIFICATION


@dataclass(frozen=True)
class Split:
    """Train/test split shared by every trial of a study, so their metrics compare."""

    x_train: pd.DataFrame
    x_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series
    task: Task
    target: str

    @property
    def classes(self) -> list[Any]:
        return sorted(pd.unique(pd.concat([self.y_train, self.y_test])).tolist())

    def example(self, rows: int = 5) -> pd.DataFrame:
        """The input example logged with the model (and the signature's input schema)."""
        return self.x_test.head(rows)


def split(
    frame: pd.DataFrame,
    *,
    target: str = DEFAULT_TARGET,
    test_size: float = 0.25,
    seed: int = 0,
    task: Task | None = None,
) -> Split:
    """Separate features from the target and hold out `test_size` (stratified for classes)."""
    if target not in frame.columns:
        raise TrainingError(
            f"target column {target!r} is not in the dataset; its columns are:"
            f" {', '.join(map(str, frame.columns))} (set params.target)"
        )
    if not 0 < test_size < 1:
        raise TrainingError(f"test_size must be between 0 and 1 (exclusive), got {test_size}")
    y = frame[target]
    # Timestamps (e.g. Feast's event_timestamp) order rows; they are not features.
    features = frame.drop(columns=[target]).select_dtypes(exclude=["datetime", "datetimetz"])
    non_numeric = [
        str(c) for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])
    ]
    if non_numeric:
        raise TrainingError(
            f"feature column(s) {', '.join(non_numeric)} are not numeric: encode them in the"
            " dataset (the model's signature is the dataset's columns)"
        )
    if features.empty or len(features.columns) == 0:
        raise TrainingError("the dataset has no feature columns besides the target")
    task = task or infer_task(y)
    from sklearn.model_selection import train_test_split

    stratify = y if task is Task.CLASSIFICATION and y.value_counts().min() >= 2 else None
    try:
        x_train, x_test, y_train, y_test = train_test_split(
            features, y, test_size=test_size, random_state=seed, stratify=stratify
        )
    except ValueError as err:
        raise TrainingError(f"cannot split the dataset ({len(frame)} rows): {err}") from err
    return Split(x_train, x_test, y_train, y_test, task, target)
