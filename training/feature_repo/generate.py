"""Write the feature repo's parquet data from scikit-learn's breast-cancer set (no download).

    python -m maestro.training.feature_repo.generate DATA_DIR [--apply]

writes DATA_DIR/breast_cancer_features.parquet (the FileSource: patient_id, event_timestamp,
created, the features and the label) and DATA_DIR/breast_cancer_entities.parquet (the entity
frame a TrainingRun names as its dataset: patient_id, event_timestamp, target). Each patient's
features are observed at a time spread over `days` days; the entity row asks for them an hour
later. With --apply the Feast objects are registered over that source and materialized into
Redis (MAESTRO_FEAST_* settings apply). The output is data: never commit it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from maestro.training.feature_repo import (
    CREATED,
    ENTITY_FILE,
    FEATURES,
    JOIN_KEY,
    SOURCE_FILE,
    TARGET,
    TIMESTAMP,
)

# Fixed, so that generated data (and what a test asserts about it) does not depend on today.
ANCHOR = datetime(2025, 1, 1, tzinfo=UTC)
FIRST_PATIENT_ID = 1000
ENTITY_LAG = timedelta(hours=1)


def source_frame(*, days: int = 30, seed: int = 0, end: datetime = ANCHOR) -> pd.DataFrame:
    """The feature source: one row per patient, event times spread over `days` before `end`."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    raw = bunch.frame
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(0, days * 24 * 3600, size=len(raw))
    times = pd.to_datetime(end) - pd.to_timedelta(np.sort(offsets)[::-1], unit="s")
    frame = pd.DataFrame(
        {
            JOIN_KEY: np.arange(FIRST_PATIENT_ID, FIRST_PATIENT_ID + len(raw), dtype="int64"),
            TIMESTAMP: times.floor("s"),
            CREATED: times.floor("s"),
        }
    )
    for column, feature in FEATURES.items():
        frame[feature] = raw[column].astype("float64").to_numpy()
    frame[TARGET] = raw["target"].astype("int64").to_numpy()
    return frame


def entity_frame(source: pd.DataFrame, lag: timedelta = ENTITY_LAG) -> pd.DataFrame:
    """The entity frame over `source`: each patient asked `lag` after its features, labelled."""
    return pd.DataFrame(
        {
            JOIN_KEY: source[JOIN_KEY].to_numpy(),
            TIMESTAMP: source[TIMESTAMP] + lag,
            TARGET: source[TARGET].to_numpy(),
        }
    )


def write(data_dir: Path, *, days: int = 30, seed: int = 0) -> tuple[Path, Path]:
    """Write the source and the entity parquet files; returns their paths."""
    data_dir.mkdir(parents=True, exist_ok=True)
    source = source_frame(days=days, seed=seed)
    source_path, entity_path = data_dir / SOURCE_FILE, data_dir / ENTITY_FILE
    source.to_parquet(source_path, index=False)
    entity_frame(source).to_parquet(entity_path, index=False)
    return source_path, entity_path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maestro.training.feature_repo.generate", description=__doc__
    )
    parser.add_argument("data_dir", type=Path, help="folder to write the parquet files into")
    parser.add_argument("--days", type=int, default=30, help="spread of the event times")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--apply", action="store_true", help="register the Feast objects and materialize"
    )
    args = parser.parse_args(argv)
    source_path, entity_path = write(args.data_dir, days=args.days, seed=args.seed)
    print(f"wrote {source_path} and {entity_path}")
    if args.apply:
        import os

        from maestro.training.contract import TrainerEnvironment
        from maestro.training.features import FeastSettings, apply_repo, materialize, open_store

        store = open_store(FeastSettings.from_environment(TrainerEnvironment.from_env(os.environ)))
        apply_repo(store, source_path.resolve())
        materialize(store, ANCHOR - timedelta(days=args.days + 1), ANCHOR + timedelta(days=1))
        print(f"applied and materialized Feast project {store.project}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
