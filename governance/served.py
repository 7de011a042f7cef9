"""Which versions of a registered model the cluster uses now: served by a ModelDeployment
(stable, canary or kept previous revision, or pinned in its spec) or tested by an ABTest.
Archiving must never touch those."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from maestro.governance.lineage_cluster import list_objects
from maestro.serving.uris import parse_models_uri

_STATUS_URIS = ("stableModelUri", "canaryModelUri", "previousModelUri")


def _version_of(uri: object, name: str) -> str | None:
    if not isinstance(uri, str):
        return None
    try:
        ref = parse_models_uri(uri)
    except ValueError:
        return None
    if ref is None or ref.name != name or not ref.version:
        return None
    return str(ref.version)


def versions_in_use(
    name: str, deployments: Iterable[Mapping[str, Any]], abtests: Iterable[Mapping[str, Any]]
) -> dict[str, list[str]]:
    """version -> who uses it ("modeldeployment ns/name", "abtest ns/name"). Pure."""
    used: dict[str, list[str]] = {}

    def note(uri: object, who: str) -> None:
        version = _version_of(uri, name)
        if version is not None and who not in used.setdefault(version, []):
            used[version].append(who)

    for md in deployments:
        meta = md.get("metadata") or {}
        who = f"modeldeployment {meta.get('namespace')}/{meta.get('name')}"
        status = md.get("status") or {}
        for key in _STATUS_URIS:
            note(status.get(key), who)
        note(((md.get("spec") or {}).get("model") or {}).get("uri"), who)
    for test in abtests:
        meta = test.get("metadata") or {}
        challenger = ((test.get("spec") or {}).get("challenger") or {}).get("model") or {}
        note(challenger.get("uri"), f"abtest {meta.get('namespace')}/{meta.get('name')}")
    return used


def cluster_versions_in_use(name: str) -> dict[str, list[str]]:
    """Raises DeploymentsUnavailable (the cluster cannot be asked) saying why."""
    return versions_in_use(name, list_objects("modeldeployments"), list_objects("abtests"))
