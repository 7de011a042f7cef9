"""Feast historical features (placeholder until the feature repo lands)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from maestro.training.errors import TrainingError


def load_historical_features(
    entity_uri: str, feature_service: str, params: Mapping[str, Any]
) -> pd.DataFrame:
    raise TrainingError("Feast feature services are not supported by this trainer yet")
