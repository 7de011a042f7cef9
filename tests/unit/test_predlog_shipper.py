"""The prediction log's Parquet shipping: rows, partitions, batching, the memory bound and
the graceful stop. Uploads go to a dict here; tests/cluster/test_driftcheck.py ships to
the real object store."""

from __future__ import annotations

import datetime
import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from maestro.serving import predlog_layout as layout
from maestro.serving.outputs import Outputs
from maestro.serving.predlog import PredictionLog
from maestro.serving.predlog_shipper import ParquetShipper, prediction_rows, to_parquet

BASE = "s3://maestro/predictions/namespace=ns/deployment=iris"


def _record(ts: str, rows: list[dict[str, float]], rid: str = "r1") -> dict[str, object]:
    return {
        "kind": "prediction",
        "timestamp": ts,
        "request_id": rid,
        "deployment": "iris",
        "revision": "v1",
        "model": "iris",
        "model_version": "1",
        "inputs": rows,
        "outputs": {"predict": [i for i in range(len(rows))]},
    }


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _shipper(uploads: dict[str, bytes], clock: Clock, **kw: int | float) -> ParquetShipper:
    return ParquetShipper(
        BASE,
        revision="v1",
        pod="iris-v1-abc",
        upload=uploads.__setitem__,
        clock=clock,
        **kw,  # type: ignore[arg-type]
    )


def test_one_row_per_input_row_with_features_named_and_metadata_prefixed() -> None:
    rows = prediction_rows(_record("2026-01-01T10:00:00+00:00", [{"a": 1.0}, {"a": 2.0}]))
    assert [r["a"] for r in rows] == [1.0, 2.0]
    assert [r["_output_predict"] for r in rows] == [0, 1]
    assert all(r[layout.REQUEST_ID] == "r1" for r in rows)
    assert all(layout.is_feature(k) == (k == "a") for r in rows for k in r)
    nameless = prediction_rows({**_record("2026-01-01T10:00:00+00:00", []), "inputs": [[1, 2]]})
    assert nameless[0]["input_0"] == 1 and nameless[0]["input_1"] == 2


def test_parquet_holds_the_union_of_columns_and_a_utc_timestamp() -> None:
    data = to_parquet(
        [
            {layout.TIMESTAMP: "2026-01-01T10:00:00+00:00", "a": 1.0},
            {layout.TIMESTAMP: "2026-01-01T10:00:01+00:00", "b": "x"},
        ]
    )
    frame = pd.read_parquet(io.BytesIO(data))
    assert list(frame.columns) == [layout.TIMESTAMP, "a", "b"]
    assert str(frame[layout.TIMESTAMP].dt.tz) == "UTC"
    assert frame["a"].isna().tolist() == [False, True]


def test_batches_go_out_per_hour_partition_when_full_or_old_enough() -> None:
    uploads: dict[str, bytes] = {}
    clock = Clock()
    shipper = _shipper(uploads, clock, batch_rows=3, flush_seconds=30)
    shipper.add(_record("2026-01-01T10:59:59+00:00", [{"a": 1.0}]))
    shipper.add(_record("2026-01-01T11:00:00+00:00", [{"a": 2.0}]))
    assert not shipper.due()
    shipper.add(_record("2026-01-01T11:00:01+00:00", [{"a": 3.0}, {"a": 4.0}]))
    assert shipper.due()  # the 11h batch holds 3 rows
    assert shipper.flush()
    assert len(uploads) == 1
    (uri,) = uploads
    assert uri.startswith(f"{BASE}/kind=predictions/revision=v1/hour=2026-01-01T11/iris-v1-abc-")
    assert shipper.pending_rows == 1  # the 10h batch waits for its interval
    clock.now = 30.0
    assert shipper.due() and shipper.flush()
    hours = sorted(layout.hour_from_key(u) for u in uploads)
    assert hours == ["2026-01-01T10", "2026-01-01T11"]
    assert shipper.shipped_rows == 4


def test_a_failing_store_keeps_rows_within_the_bound_and_drops_the_oldest() -> None:
    clock = Clock()
    failing = ParquetShipper(
        BASE,
        revision="v1",
        pod="p",
        upload=lambda uri, data: (_ for _ in ()).throw(ConnectionError("down")),
        clock=clock,
        batch_rows=2,
        max_pending_rows=5,
    )
    for hour in range(4):
        clock.now = float(hour)
        failing.add(_record(f"2026-01-01T1{hour}:00:00+00:00", [{"a": 1.0}, {"a": 2.0}]))
    assert not failing.flush()
    assert failing.failed_uploads >= 1
    assert failing.pending_rows <= 5
    assert failing.dropped_rows == 8 - failing.pending_rows


def test_close_ships_everything_and_the_log_writes_both_sinks(tmp_path: Path) -> None:
    uploads: dict[str, bytes] = {}
    shipper = ParquetShipper(
        BASE, revision="v1", pod="p", upload=uploads.__setitem__, flush_seconds=3600
    )
    log = PredictionLog(
        tmp_path / "log.jsonl", sample=1.0, deployment="iris", revision="v1", shipper=shipper
    )
    for i in range(10):
        log.record_prediction(
            request_id=f"r{i}",
            model="iris",
            model_version="1",
            inputs=np.array([[float(i), 2.0]]),
            columns=["x", "y"],
            outputs=Outputs(names=["predict"], arrays=[np.array([i % 2])]),
        )
    log.record_feedback(request_id="r1", model="iris", outcome=1)
    log.close()
    frames = {layout.kind_from_key(u): pd.read_parquet(io.BytesIO(d)) for u, d in uploads.items()}
    assert sorted(frames) == [layout.FEEDBACK, layout.PREDICTIONS]
    assert sorted(frames[layout.PREDICTIONS]["x"]) == [float(i) for i in range(10)]
    assert frames[layout.FEEDBACK][layout.OUTCOME].tolist() == ["1"]
    assert len((tmp_path / "log.jsonl").read_text().splitlines()) == 11


def test_the_writer_ships_a_batch_once_its_interval_passes_without_a_stop() -> None:
    uploads: dict[str, bytes] = {}
    shipper = ParquetShipper(
        BASE, revision="v1", pod="p", upload=uploads.__setitem__, flush_seconds=0.2
    )
    log = PredictionLog(None, sample=1.0, deployment="iris", revision="v1", shipper=shipper)
    log.record_feedback(request_id="r1", model="iris", outcome="yes")
    deadline = time.monotonic() + 10
    while not uploads and time.monotonic() < deadline:
        time.sleep(0.05)
    log.close()
    assert len(uploads) == 1


@pytest.mark.parametrize(
    ("start", "end", "hours"),
    [
        ("2026-01-01T10:30:00+00:00", "2026-01-01T12:10:00+00:00", 3),
        ("2026-01-01T10:00:00+00:00", "2026-01-01T10:00:00+00:00", 1),
    ],
)
def test_hours_between_cover_the_window(start: str, end: str, hours: int) -> None:
    got = list(
        layout.hours_between(
            datetime.datetime.fromisoformat(start), datetime.datetime.fromisoformat(end)
        )
    )
    assert len(got) == hours and got[0] == start[:13]


def test_the_drift_job_reads_exactly_the_window_it_asks_for() -> None:
    from maestro.monitoring.predictions import features_in_window, window_keys

    base = f"{BASE}/kind=predictions/revision=v1"
    uris = [
        f"{base}/hour=2026-01-01T08/p-1.parquet",
        f"{base}/hour=2026-01-01T09/p-2.parquet",
        f"{base}/hour=2026-01-01T10/p-3.parquet",
        f"{BASE}/kind=feedback/revision=v1/hour=2026-01-01T10/p-4.parquet",
    ]
    end = datetime.datetime(2026, 1, 1, 10, 30, tzinfo=datetime.UTC)
    start = end - datetime.timedelta(hours=1)
    assert window_keys(uris, start, end) == uris[1:3]
    frame = pd.read_parquet(
        io.BytesIO(
            to_parquet(
                [
                    {layout.TIMESTAMP: "2026-01-01T09:29:59+00:00", "a": 1.0, "_model": "m"},
                    {layout.TIMESTAMP: "2026-01-01T09:30:00+00:00", "a": 2.0, "_model": "m"},
                    {layout.TIMESTAMP: "2026-01-01T10:30:01+00:00", "a": 3.0, "_model": "m"},
                ]
            )
        )
    )
    kept = features_in_window(frame, start, end)
    assert list(kept.columns) == ["a"] and kept["a"].tolist() == [2.0]


def test_a_failed_upload_waits_an_interval_and_mixed_types_still_ship() -> None:
    clock = Clock()
    calls: list[str] = []

    def flaky(uri: str, data: bytes) -> None:
        calls.append(uri)
        if len(calls) == 1:
            raise ConnectionError("down")

    shipper = ParquetShipper(
        BASE, revision="v1", pod="p", upload=flaky, clock=clock, batch_rows=2, flush_seconds=30
    )
    shipper.add(_record("2026-01-01T10:00:00+00:00", [{"a": 1.0}, {"a": "text"}]))
    assert shipper.due() and not shipper.flush()
    shipper.add(_record("2026-01-01T10:00:01+00:00", [{"a": 2.0}]))
    assert not shipper.due()  # full, but the last upload failed: not before the interval
    clock.now = 30.0
    assert shipper.due() and shipper.flush()
    assert len(calls) == 2 and shipper.shipped_rows == 3 and shipper.dropped_rows == 0


def test_the_writer_survives_a_failing_sink_and_close_returns() -> None:
    class Broken(ParquetShipper):
        def add(self, record: dict[str, object]) -> None:
            raise RuntimeError("broken")

    log = PredictionLog(
        None,
        sample=1.0,
        deployment="iris",
        revision="v1",
        shipper=Broken(BASE, revision="v1", pod="p", upload=lambda u, d: None),
    )
    log.record_feedback(request_id="r1", model="iris", outcome=1)
    log.record_feedback(request_id="r2", model="iris", outcome=1)
    started = time.monotonic()
    log.close(timeout=5)
    assert time.monotonic() - started < 5
    assert not log._thread.is_alive()
