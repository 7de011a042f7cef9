"""The repo's Feast objects: a patient entity, its breast-cancer features and a service.

`feature_objects(source)` builds them over any parquet file, so a test or a deployment can
point the source elsewhere; the module-level objects use the repo's own data folder, which is
what `feast apply` run inside this folder registers.
"""

from __future__ import annotations

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource
from feast.types import Float64
from feast.value_type import ValueType

from maestro.training.feature_repo import (
    CREATED,
    ENTITY_NAME,
    FEATURE_SERVICE,
    FEATURE_VIEW,
    FEATURES,
    JOIN_KEY,
    SOURCE_FILE,
    TIMESTAMP,
    TTL_DAYS,
)

DEFAULT_SOURCE = f"data/{SOURCE_FILE}"  # relative: Feast resolves it against the repo folder


def feature_objects(
    source_path: str = DEFAULT_SOURCE,
) -> tuple[Entity, FileSource, FeatureView, FeatureService]:
    """The entity, the parquet source at `source_path`, the feature view and the service."""
    patient = Entity(
        name=ENTITY_NAME,
        join_keys=[JOIN_KEY],
        value_type=ValueType.INT64,
        description="A patient of the breast-cancer screening data",
    )
    source = FileSource(
        name="breast_cancer_source",
        path=source_path,
        timestamp_field=TIMESTAMP,
        created_timestamp_column=CREATED,
    )
    view = FeatureView(
        name=FEATURE_VIEW,
        entities=[patient],
        ttl=timedelta(days=TTL_DAYS),
        schema=[Field(name=name, dtype=Float64) for name in FEATURES.values()],
        online=True,
        source=source,
        tags={"owner": "maestro", "dataset": "sklearn://breast_cancer"},
    )
    service = FeatureService(name=FEATURE_SERVICE, features=[view])
    return patient, source, view, service


patient, breast_cancer_source, breast_cancer_features, breast_cancer_v1 = feature_objects()
