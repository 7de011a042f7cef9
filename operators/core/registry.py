"""The operator's MLflow client, and the model registry reads every kind may need.

MLflow is imported on first use: the operator's other kinds, `maestro --help` and the pure
modules never pay for it. Calls block; controllers run in Kopf's thread pool.
"""

from __future__ import annotations

import threading
from typing import Any

from maestro.serving.uris import parse_models_uri


class ModelNotFound(Exception):
    """The registry has no such model, version or alias, or the run logged no model."""


class Registry:
    """One MLflow client (tracking + registry) for the operator's lifetime."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._lock = threading.Lock()
        self._client: Any = None

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import mlflow
                from mlflow import MlflowClient

                from maestro.training.mlflow_plugins import load_mlflow_plugins_without_feast

                load_mlflow_plugins_without_feast()
                # mlflow.register_model resolves runs:/ URIs (also MLflow 3 logged models)
                # through the process-wide tracking URI; the operator has exactly one.
                mlflow.set_tracking_uri(self.tracking_uri)
                mlflow.set_registry_uri(self.tracking_uri)
                self._client = MlflowClient(self.tracking_uri, self.tracking_uri)
            return self._client

    def resolve_model_version(self, uri: str) -> str | None:
        """The registry version a models:/ URI names now (an alias, stage or `latest`
        resolved); None for URIs outside the registry (runs:/, s3://, file://...)."""
        ref = parse_models_uri(uri)
        if ref is None or not ref.name:
            return None
        if ref.alias:
            return str(self.client.get_model_version_by_alias(ref.name, ref.alias).version)
        if ref.version:
            self.client.get_model_version(ref.name, ref.version)  # raises when it does not exist
            return ref.version
        if ref.stage.lower() == "latest":
            versions = self.client.search_model_versions(f"name = '{ref.name}'")
            if not versions:
                raise ModelNotFound(f"registered model {ref.name} has no versions")
            return str(max(int(v.version) for v in versions))
        found = self.client.get_latest_versions(ref.name, stages=[ref.stage])
        if not found:
            raise ModelNotFound(f"registered model {ref.name} has no version in stage {ref.stage}")
        return str(found[0].version)


def is_missing(err: Exception) -> bool:
    """Whether an MLflow error means "no such model, version or alias" (not "unreachable")."""
    if isinstance(err, ModelNotFound):
        return True
    code = getattr(err, "error_code", None)
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")
