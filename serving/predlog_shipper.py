"""Ships the prediction log to object storage as Parquet, in batches, so it outlives the pod.

The prediction log's writer thread hands every record here; rows gather per partition
(kind, hour) and go out as one Parquet object when `batch_rows` rows wait or `flush_seconds`
passed since the oldest, and always on close (a graceful stop loses nothing). Memory is
bounded: while the store refuses uploads, rows keep waiting up to `max_pending_rows`, then
the oldest partition's rows are dropped and counted. Layout: serving/predlog_layout.py.
"""

from __future__ import annotations

import datetime
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pyarrow as pa

from maestro.serving import predlog_layout as layout
from maestro.serving.settings import ServeSettings

log = logging.getLogger(__name__)

Upload = Callable[[str, bytes], None]


@dataclass
class _Batch:
    kind: str
    hour: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    first_ms: int = 0
    since: float = 0.0
    retry_at: float = 0.0  # after a failed upload, not before this


def prediction_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One Parquet row per input row of a prediction record (predlog's dict form), pure."""
    meta = {
        layout.TIMESTAMP: record["timestamp"],
        layout.REQUEST_ID: record["request_id"],
        layout.MODEL: record["model"],
        layout.MODEL_VERSION: record.get("model_version"),
        layout.VARIANT: record.get("variant"),
    }
    inputs = record["inputs"]
    outputs: dict[str, Any] = record.get("outputs") or {}
    rows = []
    for i, row in enumerate(inputs if isinstance(inputs, list) else [inputs]):
        if isinstance(row, dict):
            features = row
        elif isinstance(row, list):
            features = {f"input_{j}": value for j, value in enumerate(row)}
        else:
            features = {"input_0": row}
        out = {}
        for name, values in outputs.items():
            value = values[i] if isinstance(values, list) and i < len(values) else values
            out[layout.OUTPUT_PREFIX + name] = (
                json.dumps(value) if isinstance(value, list) else value
            )
        rows.append({**meta, **features, **out})
    return rows


def feedback_row(record: dict[str, Any]) -> dict[str, Any]:
    return {
        layout.TIMESTAMP: record["timestamp"],
        layout.REQUEST_ID: record["request_id"],
        layout.MODEL: record["model"],
        layout.VARIANT: record.get("variant"),
        layout.OUTCOME: json.dumps(record.get("outcome")),
    }


def to_parquet(rows: list[dict[str, Any]]) -> bytes:
    """Rows (dicts, possibly with different keys) as one Parquet file; missing values null.
    A column whose values Arrow cannot hold in one type (a number in one request, text in
    another) is written as text rather than losing the batch."""
    frame = pd.DataFrame.from_records(rows)
    frame[layout.TIMESTAMP] = pd.to_datetime(frame[layout.TIMESTAMP], utc=True, format="ISO8601")
    out = io.BytesIO()
    try:
        frame.to_parquet(out, index=False, engine="pyarrow", compression="zstd")
    except (pa.ArrowException, ValueError, TypeError):
        mixed = [c for c in frame.columns if frame[c].dtype == object]
        frame[mixed] = frame[mixed].map(lambda v: v if v is None else str(v))
        out = io.BytesIO()
        frame.to_parquet(out, index=False, engine="pyarrow", compression="zstd")
    return out.getvalue()


class ParquetShipper:
    """Called only from the prediction log's writer thread (no locking)."""

    def __init__(
        self,
        base_uri: str,
        *,
        revision: str,
        pod: str,
        upload: Upload,
        batch_rows: int = 5_000,
        flush_seconds: float = 30.0,
        max_pending_rows: int = 200_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`base_uri`: predlog_layout.deployment_root of this pod's ModelDeployment."""
        self.base_uri = base_uri
        self.revision = revision
        self.pod = pod
        self._upload = upload
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self.max_pending_rows = max_pending_rows
        self._clock = clock
        self._batches: dict[tuple[str, str], _Batch] = {}
        self._seq = 0
        self.shipped_rows = 0
        self.dropped_rows = 0
        self.failed_uploads = 0

    @property
    def pending_rows(self) -> int:
        return sum(len(b.rows) for b in self._batches.values())

    def add(self, record: dict[str, Any]) -> None:
        kind = layout.FEEDBACK if record.get("kind") == "feedback" else layout.PREDICTIONS
        when = datetime.datetime.fromisoformat(record["timestamp"])
        key = (kind, layout.hour_of(when))
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = _Batch(
                kind, key[1], first_ms=int(when.timestamp() * 1000), since=self._clock()
            )
        rows = prediction_rows(record) if kind == layout.PREDICTIONS else [feedback_row(record)]
        batch.rows.extend(rows)
        self._bound()

    def _due(self, batch: _Batch, now: float) -> bool:
        if now < batch.retry_at:
            return False
        return len(batch.rows) >= self.batch_rows or now - batch.since >= self.flush_seconds

    def due(self) -> bool:
        now = self._clock()
        return any(self._due(b, now) for b in self._batches.values())

    def seconds_until_due(self) -> float:
        if not self._batches:
            return self.flush_seconds
        first = min(max(b.since + self.flush_seconds, b.retry_at) for b in self._batches.values())
        return max(0.0, first - self._clock())

    def flush(self, *, everything: bool = False) -> bool:
        """Upload the batches that are due (all of them with `everything`); False when an
        upload failed (its rows stay, within the bound, for the next flush)."""
        now = self._clock()
        ok = True
        for key, batch in sorted(self._batches.items(), key=lambda kv: kv[1].since):
            if not everything and not self._due(batch, now):
                continue
            uri = "/".join(
                (
                    layout.partition(self.base_uri, batch.kind, self.revision, batch.hour),
                    layout.object_name(self.pod, batch.first_ms, self._seq),
                )
            )
            try:
                data = to_parquet(batch.rows)
            except Exception:  # rows no writer can hold: drop them, not the hour after them
                log.exception(
                    "prediction log: %d rows cannot be written as Parquet", len(batch.rows)
                )
                self.dropped_rows += len(batch.rows)
                del self._batches[key]
                continue
            try:
                self._upload(uri, data)
            except Exception as err:  # the store is down or refuses: keep the rows, retry later
                self.failed_uploads += 1
                batch.retry_at = now + self.flush_seconds  # a whole interval before the next try
                log.warning(
                    "cannot ship %d prediction log rows to %s: %s", len(batch.rows), uri, err
                )
                ok = False
                continue
            self._seq += 1
            self.shipped_rows += len(batch.rows)
            del self._batches[key]
        return ok

    def close(self, attempts: int = 3, pause: float = 1.0) -> None:
        """Ship everything left; a few attempts, since a stopping pod gets no second chance."""
        for attempt in range(attempts):
            if self.flush(everything=True):
                return
            if attempt + 1 < attempts:
                time.sleep(pause)
        lost = self.pending_rows
        if lost:
            self.dropped_rows += lost
            log.error("prediction log: %d rows could not be shipped before the stop", lost)
            self._batches.clear()

    def _bound(self) -> None:
        while self.pending_rows > self.max_pending_rows and self._batches:
            oldest = min(self._batches, key=lambda k: self._batches[k].since)
            self.dropped_rows += len(self._batches.pop(oldest).rows)
            log.warning("prediction log: dropped the oldest batch (object store behind)")


def prediction_shipper(settings: ServeSettings) -> ParquetShipper | None:
    """The object-store sink of the prediction log, when a prefix is configured."""
    if settings.prediction_log_uri is None:
        return None
    from maestro.storage.objectstore import ObjectStore

    store = ObjectStore.from_env()
    return ParquetShipper(
        settings.prediction_log_uri,
        revision=settings.revision,
        pod=settings.pod_name,
        upload=store.put_bytes,
        flush_seconds=settings.prediction_log_flush_seconds,
    )
