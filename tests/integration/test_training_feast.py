"""Feast as the trainer's data source: the real parquet offline store, the real Redis online
store and `maestro train` against the real MLflow server. The module's repo (the `feast_repo`
fixture, tests/conftest.py) has its own registry (in a tmp dir) and Feast project, torn down
afterwards (Redis keys included)."""

from __future__ import annotations

import json
from datetime import timedelta

import pandas as pd
import pytest
import redis
from mlflow import MlflowClient

from maestro.training import contract
from maestro.training.errors import TrainingError
from maestro.training.feature_repo import (
    FEATURE_SERVICE,
    FEATURES,
    JOIN_KEY,
    TARGET,
    TIMESTAMP,
    TTL_DAYS,
    generate,
)
from maestro.training.features import (
    load_historical_features,
    materialize,
    online_features,
    open_store,
)
from tests.feast_repo import ANCHOR, PIT_PATIENT, REDIS, T1, T2, TIE_PATIENT, Repo
from tests.integration.trainer import maestro_train, ok, trainer_env, unique

pytestmark = pytest.mark.services


def test_historical_join_is_point_in_time_correct(feast_repo: Repo) -> None:
    asked = [
        (PIT_PATIENT, T1 - pd.Timedelta(days=1), 0),  # before any value: no features
        (PIT_PATIENT, T2 - pd.Timedelta(days=1), 1),  # between: the earlier value
        (PIT_PATIENT, T2, 0),  # at the later value's time: the later value
        (PIT_PATIENT, ANCHOR, 1),  # after: the later value
        (PIT_PATIENT, T2 + pd.Timedelta(days=TTL_DAYS + 1), 0),  # past the TTL: none
        (TIE_PATIENT, T1 + pd.Timedelta(days=1), 1),  # same event time: latest created
    ]
    frame = pd.DataFrame(asked, columns=[JOIN_KEY, TIMESTAMP, TARGET])
    uri = feast_repo.data / "pit.csv"
    frame.to_csv(uri, index=False)  # CSV: timestamps come back as strings

    result = load_historical_features(str(uri), FEATURE_SERVICE, feast_repo.settings, target=TARGET)

    assert result.columns.tolist() == [*FEATURES.values(), TARGET]
    assert result["mean_radius"].tolist() == [1.0, 2.0, 2.0, 4.0]
    assert result[TARGET].tolist() == [1, 0, 1, 1]


def test_materialized_features_are_read_online_from_redis(feast_repo: Repo) -> None:
    store = open_store(feast_repo.settings)
    materialize(store, (ANCHOR - timedelta(days=40)).to_pydatetime(), ANCHOR.to_pydatetime())
    online = online_features(
        store,
        FEATURE_SERVICE,
        [{JOIN_KEY: PIT_PATIENT}, {JOIN_KEY: generate.FIRST_PATIENT_ID}, {JOIN_KEY: 999_999}],
    )
    assert online[JOIN_KEY] == [PIT_PATIENT, generate.FIRST_PATIENT_ID, 999_999]
    assert online["mean_radius"] == [2.0, 17.99, None]  # 17.99: sklearn's first sample
    keys = redis.Redis.from_url(f"redis://{REDIS}").keys(f"*{store.project}*")
    assert keys, f"no Redis key of project {store.project}"


def test_maestro_train_with_a_feature_service_logs_lineage(
    feast_repo: Repo, mlflow_url: str
) -> None:
    uri = f"file://{feast_repo.entities}"
    env = trainer_env(
        mlflow_url,
        MLFLOW_EXPERIMENT_NAME=unique("train-feast"),
        MAESTRO_TRAININGRUN="ml/cancer-feast",
        MAESTRO_FRAMEWORK="SKLearn",
        MAESTRO_PARAMS={"model": "random_forest", "n_estimators": 20},
        MAESTRO_DATASET_URI=uri,
        MAESTRO_DATASET_VERSION="2025-01-01",
        MAESTRO_FEATURE_SERVICE=FEATURE_SERVICE,
        MAESTRO_FEAST_REGISTRY=feast_repo.settings.registry or "",
        MAESTRO_FEAST_REDIS=REDIS,
        MAESTRO_FEAST_PROJECT=feast_repo.settings.project or "",
        MAESTRO_SEED="1",
    )
    result = ok(maestro_train(env, timeout=120))

    client = MlflowClient(mlflow_url)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.metrics["accuracy"] > 0.85
    tags = run.data.tags
    assert tags[contract.TAG_FEATURE_SERVICE] == FEATURE_SERVICE
    assert tags[contract.TAG_DATASET_URI] == uri
    assert tags[contract.TAG_DATASET_VERSION] == "2025-01-01"
    assert tags[contract.TAG_TRAININGRUN] == "ml/cancer-feast"
    assert run.data.params["target"] == TARGET
    # The logged dataset is the joined frame: the service's features and the label, no
    # entity key, no timestamp.
    [dataset] = run.inputs.dataset_inputs
    assert dataset.dataset.source and uri in dataset.dataset.source
    columns = [c["name"] for c in json.loads(dataset.dataset.schema)["mlflow_colspec"]]
    assert columns == [*FEATURES.values(), TARGET]


def test_unknown_feature_service_names_the_registered_ones(feast_repo: Repo) -> None:
    with pytest.raises(TrainingError, match="'nope_v9'.*" + FEATURE_SERVICE):
        load_historical_features(
            str(feast_repo.entities), "nope_v9", feast_repo.settings, target=TARGET
        )
