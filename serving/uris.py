"""MLflow model URIs, parsed without MLflow (pure)."""

from __future__ import annotations

from dataclasses import dataclass

MODELS_SCHEME = "models:/"


@dataclass(frozen=True)
class RegistryRef:
    """A `models:/` URI: a registered model at a version, alias, stage or `latest`, or (MLflow
    3) a logged model id (`models:/m-...`), which has no registry version."""

    name: str
    version: str = ""
    alias: str = ""
    stage: str = ""
    model_id: str = ""


def parse_models_uri(uri: str) -> RegistryRef | None:
    """The registry reference of a `models:/` URI, None for any other scheme."""
    if not uri.startswith(MODELS_SCHEME):
        return None
    rest = uri[len(MODELS_SCHEME) :].strip("/")
    if not rest:
        raise ValueError(f"model URI {uri!r} names no model")
    if "@" in rest:
        name, _, alias = rest.partition("@")
        if not name or not alias or "/" in alias:
            raise ValueError(f"model URI {uri!r}: expected models:/<name>@<alias>")
        return RegistryRef(name=name, alias=alias)
    if "/" not in rest:
        return RegistryRef(name="", model_id=rest)
    name, _, suffix = rest.rpartition("/")
    if suffix.isdigit():
        return RegistryRef(name=name, version=suffix)
    return RegistryRef(name=name, stage=suffix)


def registered_name(uri: str) -> str:
    """The registered model's name in a `models:/` URI, '' otherwise."""
    try:
        ref = parse_models_uri(uri)
    except ValueError:
        return ""
    return ref.name if ref else ""
