"""The pure parts of the Feast data source: settings, config overrides, frame shaping."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from maestro.training.contract import TrainerEnvironment
from maestro.training.errors import TrainingError
from maestro.training.feature_repo import (
    FEATURE_STORE_YAML,
    FEATURES,
    JOIN_KEY,
    REPO_DIR,
    TARGET,
    TIMESTAMP,
    generate,
)
from maestro.training.features import (
    ROW,
    FeastSettings,
    entity_frame,
    merge_config,
    read_config,
    training_frame,
)

pytestmark = pytest.mark.unit

BASE = {
    "project": "maestro",
    "provider": "local",
    "registry": "data/registry.db",
    "online_store": {"type": "redis", "connection_string": "127.0.0.1:6379"},
    "offline_store": {"type": "file"},
}


def test_packaged_repo_is_local_redis_and_parquet_with_relative_registry() -> None:
    config = yaml.safe_load((REPO_DIR / FEATURE_STORE_YAML).read_text())
    assert config == {**BASE, "entity_key_serialization_version": 3}
    assert not Path(config["registry"]).is_absolute()


def test_settings_default_to_the_packaged_repo() -> None:
    settings = FeastSettings.from_environment(TrainerEnvironment.from_env({}))
    assert settings == FeastSettings(repo=REPO_DIR)
    assert read_config(settings) == {**BASE, "entity_key_serialization_version": 3}


def test_settings_come_from_the_contract_variables() -> None:
    env = TrainerEnvironment.from_env(
        {
            "MAESTRO_FEAST_REPO": "/repo",
            "MAESTRO_FEAST_REGISTRY": "/r/registry.db",
            "MAESTRO_FEAST_REDIS": "redis:6379,db=2",
            "MAESTRO_FEAST_PROJECT": "fraud",
        }
    )
    assert FeastSettings.from_environment(env) == FeastSettings(
        repo=Path("/repo"), registry="/r/registry.db", redis="redis:6379,db=2", project="fraud"
    )


def test_overrides_replace_only_what_they_name() -> None:
    assert merge_config(BASE, FeastSettings()) == BASE
    merged = merge_config(
        BASE, FeastSettings(registry="/tmp/reg.db", redis="redis:6380", project="p")
    )
    assert merged == {
        **BASE,
        "project": "p",
        "registry": "/tmp/reg.db",
        "online_store": {"type": "redis", "connection_string": "redis:6380"},
    }
    assert BASE["registry"] == "data/registry.db"  # the input is not changed


def test_registry_mapping_keeps_its_other_keys() -> None:
    base = {**BASE, "registry": {"path": "data/registry.db", "cache_ttl_seconds": 60}}
    merged = merge_config(base, FeastSettings(registry="/r.db"))
    assert merged["registry"] == {"path": "/r.db", "cache_ttl_seconds": 60}


def test_missing_repo_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="MAESTRO_FEAST_REPO"):
        read_config(FeastSettings(repo=tmp_path / "nowhere"))


def test_entity_frame_normalises_times_to_utc_and_numbers_rows() -> None:
    raw = pd.DataFrame(
        {
            "extra": [9, 9],
            JOIN_KEY: [2, 1],
            TIMESTAMP: ["2025-01-02T00:00:00", "2025-01-01T12:00:00+01:00"],
            TARGET: [1, 0],
        }
    )
    entities = entity_frame(raw, [JOIN_KEY], TARGET)
    assert list(entities.columns) == [JOIN_KEY, TIMESTAMP, TARGET, ROW]
    assert list(entities[TIMESTAMP]) == [
        pd.Timestamp("2025-01-02T00:00:00Z"),
        pd.Timestamp("2025-01-01T11:00:00Z"),
    ]
    assert list(entities[ROW]) == [0, 1]


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ([JOIN_KEY, TARGET], TIMESTAMP),
        ([TIMESTAMP, TARGET], JOIN_KEY),
        ([JOIN_KEY, TIMESTAMP], TARGET),
    ],
)
def test_entity_frame_names_missing_columns(columns: list[str], message: str) -> None:
    frame = pd.DataFrame({c: [1] for c in columns})
    with pytest.raises(TrainingError, match=message):
        entity_frame(frame, [JOIN_KEY], TARGET)


def test_entity_frame_rejects_bad_timestamps() -> None:
    frame = pd.DataFrame({JOIN_KEY: [1], TIMESTAMP: ["not a time"], TARGET: [0]})
    with pytest.raises(TrainingError, match=TIMESTAMP):
        entity_frame(frame, [JOIN_KEY], TARGET)


def test_training_frame_restores_order_and_drops_rows_without_features() -> None:
    joined = pd.DataFrame(
        {
            ROW: [2, 0, 1, 3],
            JOIN_KEY: [7, 5, 6, 8],
            TIMESTAMP: pd.to_datetime(["2025-01-01"] * 4, utc=True),
            "a": [3.0, 1.0, None, 4.0],
            "b": [30.0, None, None, 40.0],
            TARGET: [1, 0, 1, 0],
        }
    )
    frame, dropped = training_frame(joined, ["a", "b"], TARGET)
    assert dropped == 1  # row 1 has no feature at all; row 0 keeps its NaN
    assert frame.columns.tolist() == ["a", "b", TARGET]
    assert frame["a"].tolist() == [1.0, 3.0, 4.0]
    assert frame[TARGET].tolist() == [0, 1, 0]


def test_training_frame_without_any_features_is_an_error() -> None:
    joined = pd.DataFrame({ROW: [0], "a": [None], TARGET: [1]})
    with pytest.raises(TrainingError, match="no entity row has features"):
        training_frame(joined, ["a"], TARGET)


def test_generator_spreads_event_times_and_lags_the_entities() -> None:
    source = generate.source_frame(days=30, seed=1)
    assert list(source.columns) == [
        JOIN_KEY,
        TIMESTAMP,
        "created",
        *FEATURES.values(),
        TARGET,
    ]
    assert source[JOIN_KEY].is_unique and len(source) == 569
    span = source[TIMESTAMP].max() - source[TIMESTAMP].min()
    assert pd.Timedelta(days=25) < span <= pd.Timedelta(days=30)
    assert source[TIMESTAMP].max() <= pd.Timestamp(generate.ANCHOR)
    entities = generate.entity_frame(source)
    assert list(entities.columns) == [JOIN_KEY, TIMESTAMP, TARGET]
    assert ((entities[TIMESTAMP] - source[TIMESTAMP]) == pd.Timedelta(hours=1)).all()
    assert generate.source_frame(days=30, seed=1).equals(source)


def test_features_module_does_not_import_feast() -> None:
    code = "import sys, maestro.training.features, maestro.training.feature_repo.generate\n"
    code += "print('feast' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"
