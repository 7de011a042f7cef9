"""MLflow's plugins without Feast's: a shared start-up fix for every MLflow client we make."""

from __future__ import annotations

import importlib
import sys
from typing import Any


def load_mlflow_plugins_without_feast() -> None:
    """Load MLflow's request-header plugins, except Feast's.

    Feast registers an `mlflow.request_header_provider` plugin that adds a token only inside
    Feast's own MLflow data-source calls (a ContextVar we never set), yet loading it
    imports all of Feast: about 5 s before the first request of every trainer pod and of
    the operator's first MLflow call. MLflow loads the plugins when its registry module is
    first imported; this imports it first with Feast's entry point left out. Feast itself
    still loads when a feature service is used.
    """
    registry = "mlflow.tracking.request_header.registry"
    if registry in sys.modules:
        return
    from mlflow.utils import plugins

    load = plugins._get_entry_points

    def without_feast(group: str) -> list[Any]:
        return [
            ep
            for ep in load(group)
            if not (group == "mlflow.request_header_provider" and ep.name == "feast")
        ]

    plugins._get_entry_points = without_feast
    try:
        importlib.import_module(registry)
    finally:
        plugins._get_entry_points = load
