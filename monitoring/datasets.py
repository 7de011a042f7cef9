"""Datasets of a drift check, by URI, into pandas with only the columns needed.

URIs: a local path or `file://` (.parquet/.pq or .csv, optionally .gz/.bz2/.zst; a folder
is a partitioned parquet dataset), `s3://<bucket>/<key>` (through maestro.storage),
`runs:/<run id>/<artifact path>` (an MLflow run's artifact), and anything else the training
loader reads (`sklearn://iris`, the URI a TrainingRun logs as its dataset).
Every failure is a DriftInputError (exit 2) or, for a service that cannot be reached, a
DriftUnavailableError (exit 3).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd

from maestro.monitoring.errors import (
    COLUMN_MISSING,
    CURRENT_UNREADABLE,
    EMPTY_DATA,
    REFERENCE_UNREADABLE,
    UNSUPPORTED_FORMAT,
)
from maestro.monitoring.errors import (
    DriftInputError as DriftInputError,  # re-exported: the job program catches it here
)
from maestro.monitoring.errors import (
    DriftUnavailableError as DriftUnavailableError,
)
from maestro.monitoring.stattests import STRING_COLUMNS

REFERENCE, CURRENT = "reference", "current"
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zst")


def unreadable(side: str) -> str:
    return REFERENCE_UNREADABLE if side == REFERENCE else CURRENT_UNREADABLE


def local_path(uri: str) -> Path | None:
    """The local file a URI names (a plain path or file://), None for other schemes."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return Path(unquote(parts.netloc + parts.path))
    if not scheme or len(scheme) == 1:  # a single letter is a Windows drive
        return Path(uri)
    return None


def scheme_of(uri: str) -> str:
    if local_path(uri) is not None:
        return "file"
    return urlsplit(uri).scheme.lower()


def format_of(name: str, uri: str) -> str:
    lowered = name.lower()
    if lowered.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lowered.endswith(CSV_SUFFIXES):
        return "csv"
    raise DriftInputError(
        UNSUPPORTED_FORMAT,
        f"cannot tell the format of {uri}: name it *.parquet, *.pq or *.csv (optionally"
        " .gz, .bz2, .zst)",
    )


@dataclass
class Dataset:
    """One opened dataset: a local file or folder (downloaded first if remote), or a frame
    the training loader produced. `read` returns only the columns asked for."""

    uri: str
    side: str
    path: Path | None = None
    kind: str = "parquet"
    frame: pd.DataFrame | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def columns(self) -> list[str]:
        if self.frame is not None:
            return [str(c) for c in self.frame.columns]
        assert self.path is not None
        try:
            if self.kind == "parquet":
                import pyarrow.dataset as ds

                return list(ds.dataset(str(self.path), format="parquet").schema.names)
            return [str(c) for c in pd.read_csv(self.path, nrows=0).columns]
        except (OSError, ValueError) as err:
            raise DriftInputError(
                unreadable(self.side), f"cannot read the {self.side} data {self.uri}: {err}"
            ) from err

    def read(self, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """The data (only `columns` when given); a column it lacks is ColumnMissing."""
        if columns is not None:
            missing = [c for c in columns if c not in set(self.columns)]
            if missing:
                raise missing_columns(missing, self.side, self.uri)
        wanted = list(columns) if columns is not None else None
        if self.frame is not None:
            frame = self.frame if wanted is None else self.frame[wanted]
        else:
            assert self.path is not None
            try:
                if self.kind == "parquet":
                    frame = _read_parquet(self.path, wanted)
                else:
                    frame = pd.read_csv(self.path, usecols=wanted)
                    if wanted is not None:
                        frame = frame[wanted]
            except (OSError, ValueError) as err:
                raise DriftInputError(
                    unreadable(self.side), f"cannot read the {self.side} data {self.uri}: {err}"
                ) from err
        if len(frame) == 0:
            raise DriftInputError(EMPTY_DATA, f"the {self.side} data {self.uri} has no rows")
        return frame

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _read_parquet(path: Path, columns: list[str] | None) -> pd.DataFrame:
    """Parquet with its string columns dictionary-encoded (pandas categories: a tenth of
    the memory of Python strings, counted in one pass), typed as strings (attrs). A file is
    read column by column into a frame of one block per column: no second copy of the
    data is ever held."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if path.is_dir():  # a partitioned dataset: read whole
        import pyarrow.dataset as ds

        schema = ds.dataset(str(path), format="parquet").schema
        strings = _string_fields(schema, columns)
        table = pq.read_table(str(path), columns=columns, read_dictionary=strings)
        frame = table.to_pandas(split_blocks=True, self_destruct=True)
        del table
    else:
        schema = pq.read_schema(str(path))
        strings = _string_fields(schema, columns)
        parquet = pq.ParquetFile(str(path), read_dictionary=strings)
        names = columns if columns is not None else list(schema.names)
        frame = pd.DataFrame(
            {name: parquet.read(columns=[name]).column(0).to_pandas() for name in names},
            copy=False,
        )
    pa.default_memory_pool().release_unused()
    frame.attrs[STRING_COLUMNS] = strings
    return frame


def _string_fields(schema: Any, columns: list[str] | None) -> list[str]:
    import pyarrow as pa

    return [
        f.name
        for f in schema
        if (columns is None or f.name in columns)
        and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))
    ]


def missing_columns(missing: Sequence[str], side: str, uri: str) -> DriftInputError:
    names = ", ".join(repr(c) for c in missing)
    plural = "s" if len(missing) > 1 else ""
    return DriftInputError(
        COLUMN_MISSING, f"column{plural} {names} missing in the {side} data {uri}"
    )


def open_dataset(uri: str, side: str) -> Dataset:
    """Resolve `uri` to something readable: remote data is downloaded to a temporary folder
    (removed by close())."""
    path = local_path(uri)
    if path is not None:
        if not path.exists():
            raise DriftInputError(unreadable(side), f"{side} data not found: {uri} (no such file)")
        kind = "parquet" if path.is_dir() else format_of(path.name, uri)
        return Dataset(uri, side, path=path, kind=kind)
    scheme = scheme_of(uri)
    if scheme == "s3":
        return _open_s3(uri, side)
    if scheme == "runs":
        return _open_run_artifact(uri, side)
    return _open_with_training_loader(uri, side)


def _open_s3(uri: str, side: str) -> Dataset:
    from maestro.storage.objectstore import (
        ObjectNotFound,
        ObjectStore,
        ObjectStoreUnavailable,
        parse_s3_uri,
    )

    try:
        _, key = parse_s3_uri(uri)
    except ValueError as err:
        raise DriftInputError(unreadable(side), str(err)) from err
    kind = format_of(key, uri)
    tmp = tempfile.TemporaryDirectory(prefix="maestro-drift-")
    target = Path(tmp.name) / Path(key).name
    try:
        ObjectStore.from_env().download_file(uri, target)
    except ObjectNotFound as err:
        tmp.cleanup()
        raise DriftInputError(unreadable(side), f"{side} data not found: {err}") from err
    except ObjectStoreUnavailable as err:
        tmp.cleanup()
        raise DriftUnavailableError(str(err)) from err
    except ValueError as err:
        tmp.cleanup()
        raise DriftInputError(unreadable(side), f"{uri}: {err}") from err
    return Dataset(uri, side, path=target, kind=kind, _tmp=tmp)


def parse_runs_uri(uri: str) -> tuple[str, str]:
    """runs:/<run id>/<artifact path> -> (run id, artifact path)."""
    rest = uri[len("runs:") :].lstrip("/")
    run_id, _, artifact = rest.partition("/")
    if not run_id or not artifact:
        raise ValueError(f"expected runs:/<run id>/<artifact path>, got {uri!r}")
    return run_id, artifact


def _open_run_artifact(uri: str, side: str) -> Dataset:
    # A tracking server that is down should be reported in seconds, not after retries.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    run_id = uri[len("runs:") :].strip("/")
    if run_id and "/" not in run_id:
        return open_dataset(logged_dataset(run_id, uri, side), side)
    try:
        parse_runs_uri(uri)  # validates
    except ValueError as err:
        raise DriftInputError(unreadable(side), str(err)) from err
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    tmp = tempfile.TemporaryDirectory(prefix="maestro-drift-")
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp.name))
    except Exception as err:
        tmp.cleanup()
        if _unreachable(err) or not isinstance(err, MlflowException | OSError):
            raise DriftUnavailableError(f"MLflow could not give {uri}: {err}") from err
        raise DriftInputError(unreadable(side), f"cannot download {uri}: {err}") from err
    kind = "parquet" if local.is_dir() else format_of(local.name, uri)
    return Dataset(uri, side, path=local, kind=kind, _tmp=tmp)


def logged_dataset(run_id: str, uri: str, side: str) -> str:
    """`runs:/<run id>` alone: the dataset that run trained on (a TrainingRun's
    status.mlflowRunId), as `maestro train` recorded it in the run's lineage tag."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from maestro.training.contract import TAG_DATASET_URI

    try:
        tags = MlflowClient().get_run(run_id).data.tags
    except Exception as err:
        if _unreachable(err) or not isinstance(err, MlflowException | OSError):
            raise DriftUnavailableError(f"MLflow could not give run {run_id}: {err}") from err
        raise DriftInputError(unreadable(side), f"cannot read run {uri}: {err}") from err
    dataset = tags.get(TAG_DATASET_URI)
    if not dataset or dataset.startswith("runs:/"):
        raise DriftInputError(
            unreadable(side),
            f"run {run_id} ({uri}) names no dataset (tag {TAG_DATASET_URI}): give the"
            " dataset's URI, or runs:/<run id>/<artifact path> for a logged file",
        )
    return dataset


def _unreachable(err: BaseException) -> bool:
    text = f"{type(err).__name__} {err}"
    signs = ("ConnectionError", "Max retries", "Connection refused", "timed out", "Timeout")
    return any(sign in text for sign in signs)


def _open_with_training_loader(uri: str, side: str) -> Dataset:
    from maestro.training.data import load_frame
    from maestro.training.errors import TrainingError

    try:
        frame = load_frame(uri)
    except TrainingError as err:
        reason = UNSUPPORTED_FORMAT if "unsupported" in str(err) else unreadable(side)
        raise DriftInputError(reason, f"cannot read the {side} data: {err}") from err
    return Dataset(uri, side, frame=frame)


def load_frame(uri: str, columns: Sequence[str] | None = None, side: str = CURRENT) -> pd.DataFrame:
    """The dataset at `uri` (only `columns` when given)."""
    with open_dataset(uri, side) as dataset:
        return dataset.read(columns)


# --- digests: what the reference cache is keyed by ------------------------------------


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def tree_sha256(path: Path) -> str:
    """A folder's digest: its files' relative paths and bytes, in path order."""
    digest = hashlib.sha256()
    for item in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(item.relative_to(path)).encode() + b"\0")
        digest.update(file_sha256(item).encode())
    return digest.hexdigest()


def remote_digest(uri: str, side: str = REFERENCE) -> str:
    """Digest of data that is not a local file: an s3 object's ETag and size, a run
    artifact's run id and path, any other URI itself (sklearn:// data is bundled)."""
    scheme = scheme_of(uri)
    if scheme == "s3":
        from maestro.storage.objectstore import ObjectNotFound, ObjectStore, ObjectStoreUnavailable

        try:
            found = [info for info in ObjectStore.from_env().list(uri) if info.uri == uri]
        except ObjectNotFound as err:
            raise DriftInputError(unreadable(side), f"{side} data not found: {err}") from err
        except ObjectStoreUnavailable as err:
            raise DriftUnavailableError(str(err)) from err
        if not found:
            raise DriftInputError(unreadable(side), f"{side} data not found: no object {uri}")
        return f"s3:etag={found[0].etag}:size={found[0].size}"
    if scheme == "runs":
        run_id = uri[len("runs:") :].strip("/")
        if run_id and "/" not in run_id:  # the run's logged dataset: digest that
            return remote_or_file_digest(logged_dataset(run_id, uri, side), side)
        try:
            run_id, artifact = parse_runs_uri(uri)
        except ValueError as err:
            raise DriftInputError(unreadable(side), str(err)) from err
        return f"runs:{run_id}:{artifact}"
    return f"uri:{uri}"


def remote_or_file_digest(uri: str, side: str = REFERENCE) -> str:
    path = local_path(uri)
    if path is None:
        return remote_digest(uri, side)
    if not path.is_file():
        raise DriftInputError(unreadable(side), f"{side} data not found: {uri} (no such file)")
    return f"sha256:{file_sha256(path)}"
