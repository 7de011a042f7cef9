"""Dataset URIs -> DataFrames, and the train/test split."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from maestro.training.data import SKLEARN_DATASETS, Task, load_frame, split
from maestro.training.errors import TrainingError

pytestmark = pytest.mark.unit

SKLEARN_CASES = [
    ("iris", 150, Task.CLASSIFICATION),
    ("wine", 178, Task.CLASSIFICATION),
    ("breast_cancer", 569, Task.CLASSIFICATION),
    ("digits", 1797, Task.CLASSIFICATION),
    ("diabetes", 442, Task.REGRESSION),
]


def test_every_sklearn_dataset_has_a_case() -> None:
    assert {c[0] for c in SKLEARN_CASES} == set(SKLEARN_DATASETS)


@pytest.mark.parametrize(("name", "rows", "task"), SKLEARN_CASES, ids=[c[0] for c in SKLEARN_CASES])
def test_sklearn_datasets(name: str, rows: int, task: Task) -> None:
    frame = load_frame(f"sklearn://{name}")
    assert len(frame) == rows
    assert "target" in frame.columns
    assert split(frame, seed=0).task is task


@pytest.fixture
def small(tmp_path: Path) -> pd.DataFrame:
    return pd.DataFrame({"x1": [0.1, 0.2, 0.3, 0.4], "x2": [1, 2, 3, 4], "label": [0, 1, 0, 1]})


LOCAL_CASES = [
    ("parquet-plain-path", "data.parquet", lambda p: str(p)),
    ("parquet-file-uri", "data.parquet", lambda p: p.as_uri()),
    ("pq-suffix", "data.pq", lambda p: str(p)),
    ("csv-plain-path", "data.csv", lambda p: str(p)),
    ("csv-file-uri", "data.csv", lambda p: p.as_uri()),
    ("csv-gzip", "data.csv.gz", lambda p: str(p)),
]


@pytest.mark.parametrize(
    ("filename", "to_uri"), [c[1:] for c in LOCAL_CASES], ids=[c[0] for c in LOCAL_CASES]
)
def test_local_files(tmp_path: Path, small: pd.DataFrame, filename: str, to_uri: object) -> None:
    path = tmp_path / filename
    if ".csv" in filename:
        small.to_csv(path, index=False)
    else:
        small.to_parquet(path)
    loaded = load_frame(to_uri(path))  # type: ignore[operator]
    pd.testing.assert_frame_equal(loaded, small)


def test_parquet_folder(tmp_path: Path, small: pd.DataFrame) -> None:
    folder = tmp_path / "parts"
    folder.mkdir()
    small.iloc[:2].to_parquet(folder / "a.parquet")
    small.iloc[2:].to_parquet(folder / "b.parquet")
    assert len(load_frame(str(folder))) == 4


ERROR_CASES = [
    ("unknown-sklearn-name", "sklearn://titanic", "unknown scikit-learn dataset 'titanic'"),
    ("missing-file", "/nonexistent/data.parquet", "dataset not found"),
    ("missing-file-uri", "file:///nonexistent/data.csv", "dataset not found"),
    ("unsupported-scheme", "ftp://host/data.csv", "unsupported dataset URI scheme 'ftp'"),
    ("s3-without-bucket", "s3:///data.parquet", "invalid dataset URI: no bucket"),
]


@pytest.mark.parametrize(
    ("uri", "message"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES]
)
def test_load_errors_name_the_problem(uri: str, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        load_frame(uri)


def test_s3_store_unreachable_says_what_to_check(monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 1 on loopback refuses at once: the message says which variable to check.
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    with pytest.raises(TrainingError, match=r"cannot read dataset s3://b/d\.csv: .*unreachable"):
        load_frame("s3://b/d.csv")


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text("{}")
    with pytest.raises(TrainingError, match="cannot tell the format"):
        load_frame(str(path))


def test_split_with_named_target_is_stratified_and_deterministic() -> None:
    frame = load_frame("sklearn://iris").rename(columns={"target": "species"})
    one = split(frame, target="species", test_size=0.2, seed=3)
    two = split(frame, target="species", test_size=0.2, seed=3)
    assert list(one.x_test.index) == list(two.x_test.index)
    assert "species" not in one.x_train.columns
    assert one.y_test.value_counts().tolist() == [10, 10, 10]
    assert one.classes == [0, 1, 2]


SPLIT_ERRORS = [
    ("missing-target", {"target": "label"}, "target column 'label' is not in the dataset"),
    ("bad-test-size", {"test_size": 1.5}, "test_size must be between 0 and 1"),
]


@pytest.mark.parametrize(
    ("kwargs", "message"), [c[1:] for c in SPLIT_ERRORS], ids=[c[0] for c in SPLIT_ERRORS]
)
def test_split_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        split(load_frame("sklearn://iris"), **kwargs)  # type: ignore[arg-type]


def test_non_numeric_features_are_named_and_timestamps_dropped() -> None:
    frame = pd.DataFrame(
        {
            "x": [1.0, 2.0, 3.0, 4.0],
            "event_timestamp": pd.date_range("2024-01-01", periods=4, tz="UTC"),
            "target": [0, 1, 0, 1],
        }
    )
    assert list(split(frame, test_size=0.5).x_train.columns) == ["x"]
    with pytest.raises(TrainingError, match="city"):
        split(frame.assign(city=["a", "b", "c", "d"]), test_size=0.5)


def test_task_override() -> None:
    frame = load_frame("sklearn://iris")
    assert split(frame, task=Task.REGRESSION).task is Task.REGRESSION
