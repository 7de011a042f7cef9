"""Reference statistics computed once per reference dataset and stored next to it.

Where: a local file `<file>` -> the folder `<file>.maestro-refstats/`; `s3://b/<key>` ->
`s3://b/<key>.maestro-refstats/` (through maestro.storage); any other URI (runs:/,
sklearn://) -> `$MAESTRO_REFSTATS_DIR` (default ~/.cache/maestro/refstats)/<hash of URI>/.
Inside, one folder per digest of the data (a local file: sha256 of its bytes, remembered
with its size and mtime so it is not re-read; an s3 object: ETag and size; a run artifact:
run id and path) holding `manifest.json` (the reference's columns and rows) and one
`<hash of column>.npz` per column. A column's statistics serve every test (sorted values,
category counts, std), so the key is (digest, column): a later run with another test or
another column subset reuses them, and reads only the cache, never the reference data.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from maestro.monitoring import datasets
from maestro.monitoring.contract import REFSTATS_DIR_ENV
from maestro.monitoring.errors import (
    REFERENCE_UNREADABLE,
    DriftInputError,
    DriftUnavailableError,
)
from maestro.monitoring.stattests import ReferenceStats, reference_stats

log = logging.getLogger("maestro.monitoring.drift")

CACHE_SUFFIX = ".maestro-refstats"
CACHE_DIR_ENV = REFSTATS_DIR_ENV
FORMAT = 1
MANIFEST = "manifest.json"
DIGEST_MEMO = "digest.json"


def _hash(text: str, length: int = 24) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class CacheStore(Protocol):
    @property
    def where(self) -> str: ...

    def read(self, name: str) -> bytes | None: ...

    def write(self, name: str, data: bytes) -> None: ...


@dataclass
class LocalStore:
    root: Path

    @property
    def where(self) -> str:
        return str(self.root)

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None

    def write(self, name: str, data: bytes) -> None:
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        partial.write_bytes(data)
        os.replace(partial, target)  # readers never see half a file


@dataclass
class S3Store:
    root: str  # s3://bucket/key.maestro-refstats
    _client: Any = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return self.root

    def _store(self) -> Any:
        if self._client is None:
            from maestro.storage.objectstore import ObjectStore

            self._client = ObjectStore.from_env()
        return self._client

    def read(self, name: str) -> bytes | None:
        from maestro.storage.objectstore import ObjectNotFound, ObjectStoreUnavailable

        try:
            data: bytes = self._store().get_bytes(f"{self.root}/{name}")
        except ObjectNotFound:
            return None
        except ObjectStoreUnavailable as err:
            raise DriftUnavailableError(str(err)) from err
        return data

    def write(self, name: str, data: bytes) -> None:
        from maestro.storage.objectstore import ObjectStoreUnavailable

        try:
            self._store().put_bytes(f"{self.root}/{name}", data, "application/octet-stream")
        except ObjectStoreUnavailable as err:
            raise DriftUnavailableError(str(err)) from err


def default_cache_dir() -> Path:
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "maestro" / "refstats"


def store_for(uri: str) -> CacheStore:
    """Where the statistics of the reference at `uri` live."""
    path = datasets.local_path(uri)
    if path is not None:
        return LocalStore(path.with_name(path.name + CACHE_SUFFIX))
    if datasets.scheme_of(uri) == "s3":
        return S3Store(uri.rstrip("/") + CACHE_SUFFIX)
    # No folder beside it (sklearn://, runs:/): the configured cache, which a DriftCheck's
    # Job points at the object store so that its pods, whose disks go with them, share it.
    configured = os.environ.get(CACHE_DIR_ENV, "")
    if configured.startswith("s3://"):
        return S3Store(f"{configured.rstrip('/')}/{_hash(uri)}")
    return LocalStore(default_cache_dir() / _hash(uri))


def reference_digest(uri: str, store: CacheStore) -> str:
    """The digest of the reference data. A local file's sha256 is remembered in the cache
    with its size and mtime; a file since deleted keeps the digest it had."""
    path = datasets.local_path(uri)
    if path is None:
        return datasets.remote_digest(uri, datasets.REFERENCE)
    memo = _json(store.read(DIGEST_MEMO))
    if not path.exists():
        if memo and memo.get("sha256"):
            log.info("reference %s is gone; using the statistics cached from it", uri)
            return f"sha256:{memo['sha256']}"
        raise DriftInputError(REFERENCE_UNREADABLE, f"reference data not found: {uri}")
    info = path.stat()
    if (
        path.is_file()
        and memo
        and (memo.get("size"), memo.get("mtime_ns"))
        == (
            info.st_size,
            info.st_mtime_ns,
        )
    ):
        return f"sha256:{memo['sha256']}"
    sha = datasets.file_sha256(path) if path.is_file() else datasets.tree_sha256(path)
    if path.is_file():
        memo_data = {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": sha}
        _try_write(store, DIGEST_MEMO, json.dumps(memo_data).encode())
    return f"sha256:{sha}"


def _json(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _try_write(store: CacheStore, name: str, data: bytes) -> bool:
    """The cache only saves time: a store that refuses a write (read-only) is logged."""
    try:
        store.write(name, data)
    except (OSError, DriftUnavailableError) as err:
        log.warning("cannot write the reference cache %s/%s: %s", store.where, name, err)
        return False
    return True


# --- one column's statistics <-> bytes --------------------------------------------------


def dump_stats(stats: ReferenceStats) -> bytes:
    meta = {
        "format": FORMAT,
        "name": stats.name,
        "kind": stats.kind,
        "rows": stats.rows,
        "n": stats.n,
        "nunique": stats.nunique,
        "numeric_dtype": stats.numeric_dtype,
        "integer_dtype": stats.integer_dtype,
        "std": stats.std,
    }
    arrays: dict[str, Any] = {"meta": np.array(json.dumps(meta))}
    if stats.values is not None:
        arrays["values"] = stats.values
    else:
        assert stats.categories is not None and stats.counts is not None
        arrays["categories"] = stats.categories
        arrays["counts"] = stats.counts
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def load_stats(data: bytes) -> ReferenceStats:
    with np.load(io.BytesIO(data), allow_pickle=False) as stored:
        meta = json.loads(str(stored["meta"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"cache format {meta.get('format')}, expected {FORMAT}")
        values = stored["values"] if "values" in stored.files else None
        categories = stored["categories"] if "categories" in stored.files else None
        counts = stored["counts"] if "counts" in stored.files else None
    return ReferenceStats(
        kind=meta["kind"],
        rows=int(meta["rows"]),
        n=int(meta["n"]),
        nunique=int(meta["nunique"]),
        numeric_dtype=bool(meta["numeric_dtype"]),
        integer_dtype=bool(meta["integer_dtype"]),
        values=values,
        categories=categories,
        counts=counts,
        std=meta["std"],
        name=meta["name"],
    )


# --- the reference side of a check --------------------------------------------------------

Progress = Callable[[Iterable[str]], Iterable[str]]


class Reference:
    """The reference side of a check: statistics from the cache when there, else computed
    from the data (read once, only the missing columns) and stored in the cache."""

    def __init__(self, uri: str, *, use_cache: bool = True) -> None:
        self.uri = uri
        self.use_cache = use_cache
        self.store: CacheStore | None = None
        self.entry = ""
        self.manifest: dict[str, Any] | None = None
        self.digest = ""
        self.data_reads = 0  # how many times the reference data was read (tests, logs)
        self._dataset: datasets.Dataset | None = None
        if use_cache:
            self.store = store_for(uri)
            digest = reference_digest(uri, self.store)
            self.entry = _hash(digest)
            self.manifest = _json(self.store.read(f"{self.entry}/{MANIFEST}"))
            if self.manifest is not None and self.manifest.get("format") != FORMAT:
                self.manifest = None
            self.digest = digest

    def _open(self) -> datasets.Dataset:
        if self._dataset is None:
            self._dataset = datasets.open_dataset(self.uri, datasets.REFERENCE)
        return self._dataset

    def close(self) -> None:
        if self._dataset is not None:
            self._dataset.close()
            self._dataset = None

    def __enter__(self) -> Reference:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, columns: Sequence[str]) -> pd.DataFrame:
        """The reference data itself (only for what needs it: Evidently's HTML report)."""
        self.data_reads += 1
        return self._open().read(columns)

    @property
    def columns(self) -> list[str]:
        if self.manifest is not None:
            return [str(c) for c in self.manifest["columns"]]
        return self._open().columns

    def statistics(
        self, columns: Sequence[str], progress: Progress | None = None
    ) -> dict[str, ReferenceStats]:
        found: dict[str, ReferenceStats] = {}
        cached = set(self.manifest.get("stats", [])) if self.manifest else set()
        if self.store is not None:
            for name in [c for c in columns if c in cached]:
                data = self.store.read(f"{self.entry}/{_hash(name)}.npz")
                if data is None:
                    continue
                try:
                    found[name] = load_stats(data)
                except (ValueError, KeyError, OSError) as err:
                    log.warning("ignoring the unreadable cached statistics of %r: %s", name, err)
        missing = [c for c in columns if c not in found]
        if missing:
            found.update(self._compute(missing, progress))
        return {name: found[name] for name in columns}

    def _compute(
        self, columns: Sequence[str], progress: Progress | None
    ) -> dict[str, ReferenceStats]:
        dataset = self._open()
        all_columns = dataset.columns
        absent = [c for c in columns if c not in set(all_columns)]
        if absent:
            raise datasets.missing_columns(absent, datasets.REFERENCE, self.uri)
        log.info("computing reference statistics of %d column(s) from %s", len(columns), self.uri)
        frame = self.read(columns)
        computed: dict[str, ReferenceStats] = {}
        names: Iterable[str] = progress(columns) if progress else columns
        for name in names:
            computed[name] = reference_stats(frame[name], name)
        rows = len(frame)
        del frame
        if self.store is not None:
            self._save(computed, all_columns, rows)
        return computed

    def _save(self, computed: dict[str, ReferenceStats], all_columns: list[str], rows: int) -> None:
        assert self.store is not None
        for name, stats in computed.items():
            if not _try_write(self.store, f"{self.entry}/{_hash(name)}.npz", dump_stats(stats)):
                return
        # Re-read: another run may have added columns meanwhile.
        manifest = _json(self.store.read(f"{self.entry}/{MANIFEST}")) or {}
        if manifest.get("format") != FORMAT:
            manifest = {}
        stats_names = sorted(set(manifest.get("stats", [])) | set(computed))
        manifest = {
            "format": FORMAT,
            "uri": self.uri,
            "digest": self.digest,
            "columns": all_columns,
            "rows": rows,
            "stats": stats_names,
        }
        if _try_write(
            self.store, f"{self.entry}/{MANIFEST}", json.dumps(manifest, indent=1).encode()
        ):
            self.manifest = manifest
            log.info("reference statistics cached in %s/%s", self.store.where, self.entry)


def frame_statistics(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, ReferenceStats]:
    """Statistics of a reference frame already in memory (no cache)."""
    return {name: reference_stats(frame[name], name) for name in columns}
