"""Feast historical features as a training data source, and the repo's apply/materialize.

With MAESTRO_FEATURE_SERVICE set, the dataset URI names the *entity frame*: the join keys,
`event_timestamp` and the label. Feast joins the service's features onto it point in time
(each row gets the latest feature values at or before its timestamp, within the view's TTL),
and the trainer gets features + label. Feast is imported lazily (about 5 s): only
`open_store` and the functions taking a store import it; the frame helpers are pure.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import yaml

from maestro.training.data import load_frame
from maestro.training.errors import TrainingError
from maestro.training.feature_repo import FEATURE_STORE_YAML, REPO_DIR, TIMESTAMP

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

    from maestro.training.contract import TrainerEnvironment

log = logging.getLogger(__name__)

# Carries the entity frame's row order through Feast's join, which does not keep it.
ROW = "__maestro_row"


@dataclass(frozen=True)
class FeastSettings:
    """Where the feature store is: the repo folder and what overrides its YAML."""

    repo: Path = REPO_DIR
    registry: str | None = None
    redis: str | None = None
    project: str | None = None

    @classmethod
    def from_environment(cls, env: TrainerEnvironment) -> FeastSettings:
        return cls(
            repo=Path(env.feast_repo) if env.feast_repo else REPO_DIR,
            registry=env.feast_registry,
            redis=env.feast_redis,
            project=env.feast_project,
        )


def merge_config(base: Mapping[str, Any], settings: FeastSettings) -> dict[str, Any]:
    """feature_store.yaml's content with the settings' overrides applied (pure)."""
    config = dict(base)
    if settings.project:
        config["project"] = settings.project
    if settings.registry:
        registry = config.get("registry")
        if isinstance(registry, Mapping):
            config["registry"] = {**registry, "path": settings.registry}
        else:
            config["registry"] = settings.registry
    if settings.redis:
        online = config.get("online_store")
        online = dict(online) if isinstance(online, Mapping) else {}
        online.setdefault("type", "redis")
        online["connection_string"] = settings.redis
        config["online_store"] = online
    return config


def read_config(settings: FeastSettings) -> dict[str, Any]:
    """The repo's feature_store.yaml, overridden by the settings."""
    path = settings.repo / FEATURE_STORE_YAML
    try:
        base = yaml.safe_load(path.read_text())
    except OSError as err:
        raise TrainingError(
            f"no Feast repo at {settings.repo}: cannot read {path} ({err});"
            " set MAESTRO_FEAST_REPO to a folder holding feature_store.yaml"
        ) from err
    if not isinstance(base, Mapping):
        raise TrainingError(f"{path} is not a YAML mapping")
    return merge_config(base, settings)


def open_store(settings: FeastSettings) -> FeatureStore:
    """A FeatureStore on the repo's configuration (imports Feast)."""
    from feast import FeatureStore, RepoConfig

    config = RepoConfig(repo_path=settings.repo, **read_config(settings))
    return FeatureStore(repo_path=str(settings.repo), config=config)


def apply_repo(store: FeatureStore, source_path: Path | str | None = None) -> None:
    """`feast apply` from code: register the repo's objects, the source at `source_path`."""
    from maestro.training.feature_repo.definitions import DEFAULT_SOURCE, feature_objects

    store.apply(list(feature_objects(str(source_path) if source_path else DEFAULT_SOURCE)))


def materialize(
    store: FeatureStore, start: datetime, end: datetime, views: Sequence[str] | None = None
) -> None:
    """Load the offline features with event times in [start, end] into the online store."""
    store.materialize(start, end, feature_views=list(views) if views else None)


def online_features(
    store: FeatureStore, feature_service: str, entity_rows: Sequence[Mapping[str, Any]]
) -> dict[str, list[Any]]:
    """The online store's latest values of the service's features for `entity_rows`."""
    service = _feature_service(store, feature_service)
    response = store.get_online_features(
        features=service, entity_rows=[dict(row) for row in entity_rows]
    )
    result: dict[str, list[Any]] = response.to_dict()
    return result


def service_features(service: FeatureService) -> list[str]:
    """The service's feature names, as the join (without full feature names) calls them."""
    return [
        field.name
        for projection in service.feature_view_projections
        for field in projection.features
    ]


def entity_frame(frame: pd.DataFrame, join_keys: Sequence[str], target: str) -> pd.DataFrame:
    """Check and normalise the entity frame: join keys, UTC event times, label (pure)."""
    required = [*join_keys, TIMESTAMP, target]
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise TrainingError(
            f"the entity dataset lacks column(s) {', '.join(missing)}: with a feature service"
            f" the dataset is the entity frame ({', '.join(required)})"
        )
    if frame.empty:
        raise TrainingError("the entity dataset has no rows")
    try:
        column = frame[TIMESTAMP]
        # CSV gives strings: ISO 8601, each with or without its own offset (naive = UTC).
        iso = None if pd.api.types.is_datetime64_any_dtype(column) else "ISO8601"
        timestamps = pd.to_datetime(column, utc=True, format=iso)
    except (ValueError, TypeError) as err:
        raise TrainingError(f"column {TIMESTAMP} is not a timestamp: {err}") from err
    if timestamps.isna().any():
        raise TrainingError(f"column {TIMESTAMP} has {int(timestamps.isna().sum())} empty value(s)")
    entities = frame[required].copy()
    entities[TIMESTAMP] = timestamps
    entities[ROW] = range(len(entities))
    return entities.reset_index(drop=True)


def training_frame(
    joined: pd.DataFrame, features: Sequence[str], target: str
) -> tuple[pd.DataFrame, int]:
    """Feast's join -> features + label in the entity frame's order (pure).

    Rows whose features are all missing (no value at or before their time within the TTL)
    are dropped; the count is returned. Partly missing values stay (as NaN) for the trainer.
    """
    missing = [name for name in (ROW, *features, target) if name not in joined.columns]
    if missing:
        raise TrainingError(f"Feast's join lacks column(s) {', '.join(missing)}")
    ordered = joined.sort_values(ROW, kind="stable")
    found = ordered[list(features)].notna().any(axis=1)
    dropped = int((~found).sum())
    if not found.any():
        raise TrainingError(
            "no entity row has features at or before its event_timestamp (within the feature"
            " views' TTL): is the feature data materialised for those times and entities?"
        )
    result = ordered.loc[found, [*features, target]].reset_index(drop=True)
    return result, dropped


def _feature_service(store: FeatureStore, name: str) -> FeatureService:
    from feast.errors import FeatureServiceNotFoundException

    try:
        return store.get_feature_service(name)
    except FeatureServiceNotFoundException as err:
        known = sorted(s.name for s in store.list_feature_services())
        raise TrainingError(
            f"Feast feature service {name!r} is not registered in project {store.project!r}"
            f" (registered: {', '.join(known) or 'none; apply the feature repo first'})"
        ) from err


def load_historical_features(
    entity_uri: str, feature_service: str, settings: FeastSettings, *, target: str
) -> pd.DataFrame:
    """Join `feature_service`'s features point in time onto the entity frame at `entity_uri`.

    Returns the features and the label column `target`, one row per entity row that found
    features, in the entity frame's order.
    """
    store = open_store(settings)
    service = _feature_service(store, feature_service)
    features = service_features(service)
    join_keys = sorted(
        {
            column.name
            for projection in service.feature_view_projections
            for column in store.get_feature_view(projection.name).entity_columns
        }
    )
    entities = entity_frame(load_frame(entity_uri), join_keys, target)
    joined = store.get_historical_features(entity_df=entities, features=service).to_df()
    frame, dropped = training_frame(joined, features, target)
    if dropped:
        log.warning(
            "%d of %d entity rows found no features of %s and are left out",
            dropped,
            len(entities),
            feature_service,
        )
    return frame
