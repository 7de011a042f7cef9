"""Maestro's Feast feature repo: feature_store.yaml and the definitions beside it.

`definitions` imports Feast (slow, ~5 s) and is imported only when a feature service is used;
this module and `generate` do not.
"""

from __future__ import annotations

from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent
FEATURE_STORE_YAML = "feature_store.yaml"

ENTITY_NAME = "patient"
JOIN_KEY = "patient_id"
TIMESTAMP = "event_timestamp"  # the entity frame's and the source's event time
CREATED = "created"  # when a feature row was written; breaks ties between equal event times
TARGET = "target"
FEATURE_VIEW = "breast_cancer_features"
FEATURE_SERVICE = "breast_cancer_v1"
SOURCE_FILE = "breast_cancer_features.parquet"  # written by generate.py into the data folder
ENTITY_FILE = "breast_cancer_entities.parquet"
TTL_DAYS = 90
# scikit-learn's breast-cancer column -> feature name (Feast fields need no spaces).
FEATURES = {
    "mean radius": "mean_radius",
    "mean texture": "mean_texture",
    "mean perimeter": "mean_perimeter",
    "mean area": "mean_area",
    "mean smoothness": "mean_smoothness",
    "mean compactness": "mean_compactness",
    "mean concavity": "mean_concavity",
    "mean concave points": "mean_concave_points",
    "mean symmetry": "mean_symmetry",
    "mean fractal dimension": "mean_fractal_dimension",
}
