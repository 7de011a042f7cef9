"""The prediction log: sampled predictions and every feedback, written by a background
thread so the request path only appends to a queue. Two sinks, either or both: JSON lines
in a local file, and Parquet batches shipped to object storage (predlog_shipper), which
outlive the pod and are what the DriftCheck job reads.

One line per record (the drift job reads them back as reference-vs-current data):
  {"kind": "prediction", "timestamp": "2025-01-01T12:00:00.123456+00:00", "request_id": "...",
   "deployment": "...", "revision": "...", "model": "...", "model_version": "3",
   "inputs": [{"column": value, ...}, ...],          # one object per row (column signature)
   "outputs": {"predict": [...]}}                     # per output name, one value per row
  {"kind": "feedback", "timestamp": ..., "request_id": "...", "model": ..., "outcome": ...}
Inputs of a model without column names are written as nested lists.
"""

from __future__ import annotations

import datetime
import json
import logging
import queue
import random
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from maestro.serving.outputs import Outputs
from maestro.serving.predlog_shipper import ParquetShipper

log = logging.getLogger(__name__)

# Records waiting for the writer; past this the newest are dropped (and counted) rather
# than letting a slow disk hold memory or requests.
MAX_PENDING = 10_000
_STOP = object()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class PredictionLog:
    """Append-only JSON-lines writer; `record_*` methods are cheap and never block."""

    def __init__(
        self,
        path: Path | None,
        *,
        sample: float,
        deployment: str,
        revision: str,
        seed: int | None = None,
        variant: str | None = None,
        shipper: ParquetShipper | None = None,
    ) -> None:
        """`variant`: the ABTest variant this pod serves (every line then names it).
        `shipper`: also ship the records to object storage."""
        self.path = path
        self.shipper = shipper
        self.sample = sample
        self._identity = {"deployment": deployment, "revision": revision}
        if variant:
            self._identity["variant"] = variant
        self._random = random.Random(seed)
        self._queue: queue.Queue[Any] = queue.Queue(MAX_PENDING)
        self.dropped = 0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._write, name="prediction-log", daemon=True)
        self._thread.start()

    def sampled(self) -> bool:
        return self.sample >= 1.0 or self._random.random() < self.sample

    def record_prediction(
        self,
        *,
        request_id: str,
        model: str,
        model_version: str,
        inputs: np.ndarray[Any, Any],
        columns: Sequence[str],
        outputs: Outputs,
    ) -> None:
        """Queue one prediction line (sampling is the caller's `sampled()` check)."""
        self._put(
            ("prediction", _now(), request_id, model, model_version, inputs, columns, outputs)
        )

    def record_feedback(self, *, request_id: str, model: str, outcome: Any) -> None:
        self._put(("feedback", _now(), request_id, model, outcome))

    def _put(self, item: tuple[Any, ...]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def close(self, timeout: float = 20.0) -> None:
        """Write (and ship) what is queued, then stop the writer; at most `timeout` s,
        within the pod's termination grace period."""
        try:
            self._queue.put(_STOP, timeout=timeout / 2)
        except queue.Full:
            log.error("prediction log: the writer is stuck; %d records not written", MAX_PENDING)
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("prediction log: the writer did not finish within %.0f s", timeout)
        if self.dropped:
            log.warning("prediction log dropped %d records (writer behind)", self.dropped)

    # --- the writer thread ------------------------------------------------------------------
    def _record(self, item: tuple[Any, ...]) -> dict[str, Any]:
        if item[0] == "feedback":
            _, timestamp, request_id, model, outcome = item
            record = {
                "kind": "feedback",
                "timestamp": timestamp,
                "request_id": request_id,
                **self._identity,
                "model": model,
                "outcome": outcome,
            }
        else:
            _, timestamp, request_id, model, version, inputs, columns, outputs = item
            rows = inputs.tolist()
            if columns and inputs.ndim == 2:
                rows = [dict(zip(columns, row, strict=False)) for row in rows]
            record = {
                "kind": "prediction",
                "timestamp": timestamp,
                "request_id": request_id,
                **self._identity,
                "model": model,
                "model_version": version,
                "inputs": rows,
                "outputs": {
                    name: array.tolist()
                    for name, array in zip(outputs.names, outputs.arrays, strict=True)
                },
            }
        # JSON types only, as a line would hold them (the shipper writes the same values).
        loaded: dict[str, Any] = json.loads(json.dumps(record, default=_jsonable))
        return loaded

    def _write(self) -> None:
        out = self.path.open("a", encoding="utf-8") if self.path is not None else None
        try:
            while True:
                items, stop = self._drain()
                try:
                    self._handle(items, stop, out)
                except Exception:  # the writer must outlive any failure, or close() waits
                    log.exception("the prediction log could not write or ship a batch")
                if stop:
                    return
        finally:
            if out is not None:
                out.close()

    def _handle(self, items: list[tuple[Any, ...]], stop: bool, out: Any) -> None:
        records = []
        for item in items:
            try:
                records.append(self._record(item))
            except Exception:  # one bad record must not end the log
                log.exception("cannot write a prediction log record")
        if out is not None and records:
            out.writelines(json.dumps(r) + "\n" for r in records)
            out.flush()
        if self.shipper is not None:
            for record in records:
                self.shipper.add(record)
            if stop:
                self.shipper.close()
            elif self.shipper.due():
                self.shipper.flush()

    def _drain(self) -> tuple[list[tuple[Any, ...]], bool]:
        """Everything queued (waiting for the first item at most until the shipper's next
        flush is due), and whether the stop was among it."""
        wait = self.shipper.seconds_until_due() if self.shipper is not None else None
        items: list[tuple[Any, ...]] = []
        try:
            first = self._queue.get(timeout=wait) if wait is not None else self._queue.get()
        except queue.Empty:
            return items, False
        if first is _STOP:
            return items, True
        items.append(first)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return items, False
            if item is _STOP:
                return items, True
            items.append(item)
