"""A real Feast repo for the tests (the `feast_repo` fixture of tests/conftest.py builds it):
the packaged feature definitions over the generator's data plus a few rows with known
history, a parquet offline store in a temporary folder, the Redis online store of
`make services`, and a project of its own, torn down afterwards (Redis keys included)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import redis

from maestro.training.feature_repo import CREATED, JOIN_KEY, TIMESTAMP, generate
from maestro.training.features import FeastSettings, apply_repo, open_store

REDIS = "127.0.0.1:6379"
ANCHOR = pd.Timestamp(generate.ANCHOR)
# Patient 1's mean_radius is 1.0 from ANCHOR-10d and 2.0 from ANCHOR-5d. Patient 2 has two
# rows at the same event time; the one created later (a correction, 4.0) wins.
PIT_PATIENT, TIE_PATIENT = 1, 2
T1, T2 = ANCHOR - pd.Timedelta(days=10), ANCHOR - pd.Timedelta(days=5)


@dataclass(frozen=True)
class Repo:
    settings: FeastSettings
    data: Path
    entities: Path  # the generator's entity frame: one labelled row per patient


def _rows(
    template: pd.Series, rows: list[tuple[int, pd.Timestamp, pd.Timestamp, float]]
) -> list[Any]:
    out = []
    for patient, event, created, radius in rows:
        row = template.copy()
        row[JOIN_KEY], row[TIMESTAMP], row[CREATED], row["mean_radius"] = (
            patient,
            event,
            created,
            radius,
        )
        out.append(row)
    return out


def redis_unavailable() -> str | None:
    """Why the online store cannot be used, or None when Redis answers."""
    try:
        redis.Redis.from_url(f"redis://{REDIS}", socket_connect_timeout=2).ping()
    except redis.ConnectionError as err:
        return f"Redis is not running on {REDIS} ({err}); start it with `make services`"
    return None


@contextmanager
def created_repo(data: Path) -> Iterator[Repo]:
    """The repo with its files in `data`, torn down on exit."""
    source = generate.source_frame()
    extra = _rows(
        source.iloc[0],
        [
            (PIT_PATIENT, T1, T1, 1.0),
            (PIT_PATIENT, T2, T2, 2.0),
            (TIE_PATIENT, T1, T1, 3.0),
            (TIE_PATIENT, T1, T1 + pd.Timedelta(hours=1), 4.0),
        ],
    )
    source = pd.concat([source, pd.DataFrame(extra)], ignore_index=True)
    source[JOIN_KEY] = source[JOIN_KEY].astype("int64")
    source_path = data / "features.parquet"
    source.to_parquet(source_path, index=False)
    entities = data / "entities.parquet"
    generate.entity_frame(generate.source_frame()).to_parquet(entities, index=False)

    settings = FeastSettings(
        registry=str(data / "registry.db"),
        redis=REDIS,
        project=f"t_{uuid.uuid4().hex[:10]}",
    )
    store = open_store(settings)
    apply_repo(store, source_path)
    try:
        yield Repo(settings, data, entities)
    finally:
        store.teardown()
