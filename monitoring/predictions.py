"""The current side of a DriftCheck: what a ModelDeployment's pods served over a window,
read back from the Parquet files they shipped (layout: serving/predlog_layout.py)."""

from __future__ import annotations

import datetime
import io
import logging

import pandas as pd

from maestro.serving import predlog_layout as layout

log = logging.getLogger(__name__)


def window_keys(uris: list[str], start: datetime.datetime, end: datetime.datetime) -> list[str]:
    """The prediction files among `uris` whose hour partition overlaps [start, end], pure."""
    hours = set(layout.hours_between(start, end))
    return sorted(
        uri
        for uri in uris
        if layout.kind_from_key(uri) == layout.PREDICTIONS and layout.hour_from_key(uri) in hours
    )


def features_in_window(
    frame: pd.DataFrame, start: datetime.datetime, end: datetime.datetime
) -> pd.DataFrame:
    """Rows logged in [start, end], feature columns only, pure."""
    stamps = frame[layout.TIMESTAMP]
    kept = frame[(stamps >= pd.Timestamp(start)) & (stamps <= pd.Timestamp(end))]
    return kept[[c for c in kept.columns if layout.is_feature(c)]].reset_index(drop=True)


def load_window(
    root: str, window: datetime.timedelta, now: datetime.datetime
) -> tuple[pd.DataFrame, int]:
    """The features the deployment under `root` (predlog_layout.deployment_root) served in
    the window ending now, and how many files they came from. Raises the object store's
    errors (ObjectStoreUnavailable); an empty result is the caller's to judge."""
    from maestro.storage.objectstore import ObjectStore

    start = now - window
    store = ObjectStore.from_env()
    # Only the window's hour partitions of each revision are listed, not the whole history.
    revisions = store.folders(f"{root.rstrip('/')}/kind={layout.PREDICTIONS}/")
    listed = [
        info.uri
        for revision in revisions
        for hour in layout.hours_between(start, now)
        for info in store.list(f"{revision}hour={hour}/")
    ]
    keys = window_keys(listed, start, now)
    log.info("reading %d prediction log files of %s since %s", len(keys), root, start.isoformat())
    frames = [pd.read_parquet(io.BytesIO(store.get_bytes(uri))) for uri in keys]
    if not frames:
        return pd.DataFrame(), 0
    return features_in_window(pd.concat(frames, ignore_index=True), start, now), len(frames)
