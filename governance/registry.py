"""The MLflow registry calls the governance commands make, with MLflow's errors turned
into the two that matter to a caller: the model or version does not exist (bad input), or
the registry cannot be reached (nothing changed, try again)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

ARCHIVED_TAG = "maestro.archived"
_MISSING_CODES = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")


class UnknownModel(LookupError):
    """No such registered model, version or alias (bad input)."""


class RegistryUnavailable(RuntimeError):
    """MLflow could not be reached or failed: nothing was changed."""


def _call(what: str, fn: Callable[[], T]) -> T:
    from mlflow.exceptions import MlflowException

    try:
        return fn()
    except MlflowException as err:
        if err.error_code in _MISSING_CODES:
            raise UnknownModel(f"{what} does not exist in the registry") from None
        raise RegistryUnavailable(f"the registry failed on {what}: {one_line(err)}") from None
    except OSError as err:
        raise RegistryUnavailable(f"cannot reach the registry ({what}): {err}") from None


def one_line(err: BaseException, limit: int = 300) -> str:
    return " ".join(str(err).split())[:limit]


class ModelRegistry:
    def __init__(self, tracking_uri: str) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri, tracking_uri)

    @contextmanager
    def resolving(self) -> Iterator[None]:
        """mlflow.pyfunc.load_model and get_model_info resolve models:/ URIs through the
        process-wide URIs: point them at this registry for the call, then put them back."""
        import mlflow

        before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(before[0])
            mlflow.set_registry_uri(before[1])

    def version(self, name: str, version: str) -> Any:
        if not version.isdigit():
            raise UnknownModel(f"version {version!r} of {name!r} is not a version number")
        self.model(name)
        return _call(
            f"version {version} of model {name!r}",
            lambda: self.client.get_model_version(name, version),
        )

    def model(self, name: str) -> Any:
        return _call(f"model {name!r}", lambda: self.client.get_registered_model(name))

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version `alias` points at now; None when it is not set."""
        aliases: dict[str, str] = dict(self.model(name).aliases or {})
        found = aliases.get(alias)
        return str(found) if found is not None else None

    def set_alias(self, name: str, alias: str, version: str) -> None:
        _call(
            f"alias {alias!r} of {name!r}",
            lambda: self.client.set_registered_model_alias(name, alias, version),
        )

    def versions(self, name: str) -> list[Any]:
        self.model(name)
        found: list[Any] = _call(
            f"versions of {name!r}",
            lambda: list(self.client.search_model_versions(f"name = '{name}'")),
        )
        return sorted(found, key=lambda v: int(v.version))

    def archive(self, name: str, version: str) -> None:
        _call(
            f"version {version} of {name!r}",
            lambda: self.client.set_model_version_tag(name, version, ARCHIVED_TAG, "true"),
        )

    def input_signature(self, name: str, version: str) -> list[dict[str, Any]]:
        """The version's input schema in MLflow's dict form; [] without a signature."""
        from mlflow.models import get_model_info

        from maestro.governance.signature import parse_inputs

        with self.resolving():
            info = _call(
                f"the MLmodel of {name} v{version}",
                lambda: get_model_info(f"models:/{name}/{version}"),
            )
        if info.signature is None:
            return []
        return parse_inputs(info.signature.to_dict().get("inputs"))
