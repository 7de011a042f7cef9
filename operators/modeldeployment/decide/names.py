"""Revision names, the registry's `models:/` URIs and the units of a ModelDeployment spec.

URIs are read by maestro.serving.uris.parse_models_uri, the parser the serving pods and the
operator's registry client use, so all three agree on what a URI names.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping

from maestro.operators.core.durations import parse_duration
from maestro.serving.uris import RegistryRef, parse_models_uri

__all__ = ["parse_duration"]

# Longest revision name: it is appended to object names limited to 63 characters.
_MAX_REVISION = 15


def _registered(uri: str) -> RegistryRef | None:
    """The registered model `uri` names, or None. A logged model id (models:/m-...) has no
    registered name, and a malformed models:/ URI is served as given, never resolved: the
    serving pod's loader reports it."""
    try:
        ref = parse_models_uri(uri)
    except ValueError:
        return None
    return ref if ref is not None and ref.name else None


def registry_version(uri: str) -> str | None:
    """The version of a concrete registry URI (models:/iris/3 -> "3"), else None."""
    ref = _registered(uri)
    # ASCII digits only: the version names objects and labels (`v3`), which allow no other.
    if ref is None or not ref.version.isascii():
        return None
    return ref.version or None


def registry_model(uri: str) -> str | None:
    """The registered model a models:/ URI names, whatever its version, stage or alias."""
    ref = _registered(uri)
    return ref.name if ref is not None else None


def needs_resolution(uri: str) -> bool:
    """Whether the handler must ask the registry which version `uri` means now."""
    return registry_model(uri) is not None and registry_version(uri) is None


def concrete_uri(spec_uri: str, version: str | int) -> str:
    """spec.model.uri with its alias, stage or `latest` pinned to the resolved version."""
    name = registry_model(spec_uri)
    if name is None:
        raise ValueError(f"{spec_uri!r} is not a models:/ registry URI")
    return f"models:/{name}/{version}"


def revision_name(uri: str, taken: Mapping[str, str] | None = None) -> str:
    """`v<version>` for a registry version, else the first 8 hex digits of sha256(uri).

    `taken` maps the revisions that exist to their URIs: a version number already used by
    another model (spec.model.uri moved from iris/3 to wine/3) gets the hash name instead.
    """
    version = registry_version(uri)
    name = f"v{version}" if version is not None else None
    if name is None or len(name) > _MAX_REVISION or (taken or {}).get(name, uri) != uri:
        name = hashlib.sha256(uri.encode()).hexdigest()[:8]
    return name


def share(replicas: int, percent: int) -> int:
    """Replicas for `percent` of the traffic `replicas` take: ceil, at least one."""
    return max(1, math.ceil(replicas * percent / 100))
