"""The operator's MLflow client, and the model registry reads every kind may need.

MLflow is imported on first use: the operator's other kinds, `maestro --help` and the pure
modules never pay for it. The registry reads (which version a URI names, a version's
MLmodel) go over MLflow's REST API when the tracking server allows it (registry_rest), so
an operator serving only ModelDeployments never imports MLflow. Calls block; controllers
run in Kopf's thread pool.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from maestro.operators.core.registry_rest import (
    ARTIFACT_UNREADABLE,
    RestError,
    RestRegistry,
    Unsupported,
)
from maestro.serving.uris import parse_models_uri

log = logging.getLogger(__name__)

# MLflow's package import is not safe from two threads at once: a second thread can see a
# partially initialised `mlflow` ("cannot import name ..."), and the failed import stays
# broken for the process. Every first import of MLflow in the operator goes through here.
_IMPORT_LOCK = threading.Lock()


def import_mlflow() -> None:
    """Import MLflow (and the registry plugins) once, serialised across threads."""
    with _IMPORT_LOCK:
        import mlflow  # noqa: F401

        from maestro.training.mlflow_plugins import load_mlflow_plugins_without_feast

        load_mlflow_plugins_without_feast()


class ModelNotFound(Exception):
    """The registry has no such model, version or alias, or the run logged no model."""


class ModelNotServable(Exception):
    """The model exists but `maestro serve` cannot load it (no python_function flavor)."""


# The flavor `maestro serve` loads every model through.
SERVABLE_FLAVOR = "python_function"


class Registry:
    """One MLflow client (tracking + registry) for the operator's lifetime."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self._lock = threading.Lock()
        self._client: Any = None
        self.rest = (
            RestRegistry(tracking_uri, os.environ)
            if RestRegistry.usable(tracking_uri, os.environ)
            else None
        )

    @property
    def reads(self) -> Any:
        """Where registry reads go: the REST reader, else MLflow's client."""
        return self.rest if self.rest is not None else self.client

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                import_mlflow()
                import mlflow
                from mlflow import MlflowClient

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
            return str(self.reads.get_model_version_by_alias(ref.name, ref.alias).version)
        if ref.version:
            self.reads.get_model_version(ref.name, ref.version)  # raises when it does not exist
            return ref.version
        if ref.stage.lower() == "latest":
            versions = self.reads.search_model_versions(f"name = '{ref.name}'")
            if not versions:
                raise ModelNotFound(f"registered model {ref.name} has no versions")
            return str(max(int(v.version) for v in versions))
        found = self.reads.get_latest_versions(ref.name, stages=[ref.stage])
        if not found:
            raise ModelNotFound(f"registered model {ref.name} has no version in stage {ref.stage}")
        return str(found[0].version)

    def servable(self, uri: str) -> None:
        """Raise ModelNotFound when `uri` has no model (no MLmodel), ModelNotServable when
        its flavors leave `maestro serve` nothing to load; reads only the MLmodel file."""
        if self.rest is not None:
            try:
                self._servable_flavors(uri, sorted(self.rest.mlmodel(uri).get("flavors") or {}))
                return
            except Unsupported:
                pass  # MLflow's client reads it
            except RestError as err:
                if err.status == 404 or err.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"):
                    raise ModelNotFound(f"no model at {uri}: {err}") from err
                if err.error_code == ARTIFACT_UNREADABLE:
                    raise ModelNotFound(
                        f"no model at {uri}: the tracking server could not read its MLmodel"
                        f" from the artifact store ({err})"
                    ) from err
                if err.status >= 500:
                    raise  # the server failed: asked again with back-off
                # As below: the pods that load the model say what is wrong with it.
                log.warning("could not inspect %s before rolling it out: %s", uri, err)
                return
        # First: it imports MLflow under the lock and sets the process's tracking URI.
        _ = self.client
        from mlflow.exceptions import MlflowException
        from mlflow.models import get_model_info

        try:
            info = get_model_info(uri)
        except (MlflowException, OSError) as err:
            text = str(err)
            code = getattr(err, "error_code", None)
            if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or any(
                sign in text
                for sign in ("RESOURCE_DOES_NOT_EXIST", "404 Client Error", "No such file")
            ):
                raise ModelNotFound(f"no model at {uri}: {' '.join(text.split())[:300]}") from err
            if isinstance(err, OSError) or "Max retries exceeded" in text:
                raise  # MLflow or its artifact store unreachable: asked again with back-off
            # Anything else: the pods that load the model say what is wrong with it.
            log.warning("could not inspect %s before rolling it out: %s", uri, text[:300])
            return
        self._servable_flavors(uri, sorted(info.flavors))

    @staticmethod
    def _servable_flavors(uri: str, flavors: list[str]) -> None:
        if SERVABLE_FLAVOR not in flavors:
            raise ModelNotServable(
                f"{uri} has the flavors {', '.join(flavors) or 'none'} but no"
                f" {SERVABLE_FLAVOR}, which maestro serve loads; log it with a flavor that"
                " adds python_function (e.g. mlflow.sklearn, mlflow.pyfunc)"
            )


def checks_servable(uri: str) -> bool:
    """URIs whose model the operator can inspect before rolling it out: registry versions
    and runs. Others (s3://, file://) are read by the serving pods only."""
    ref = None
    try:
        ref = parse_models_uri(uri)
    except ValueError:
        return False
    return (ref is not None and bool(ref.name) and bool(ref.version)) or uri.startswith("runs:/")


def is_missing(err: Exception) -> bool:
    """Whether an MLflow error means "no such model, version or alias" (not "unreachable")."""
    if isinstance(err, ModelNotFound | ModelNotServable):
        return True
    code = getattr(err, "error_code", None)
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")
