"""The watch-fed store of owned objects (operators.core.object_cache) as plain functions:
what a list, a watch event and a write's answer do to it, how a watch's lines become
events, and which namespaces the operator keeps. The reflectors against a real API server
are exercised by every ModelDeployment cluster test (their controller reads only this)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from maestro.operators.core.object_cache import Store, WatchGone, serves, watch_events

pytestmark = pytest.mark.unit

LABEL = "mlops.maestro.dev/deployment"


@dataclass(frozen=True)
class Kind:
    api_version: str
    kind: str
    plural: str


SERVICE = Kind("v1", "Service", "services")
DEPLOYMENT = Kind("apps/v1", "Deployment", "deployments")


def obj(name: str, owner: str, version: str, namespace: str = "ns", **extra: Any) -> dict[str, Any]:
    meta = {
        "name": name,
        "namespace": namespace,
        "resourceVersion": version,
        "labels": {LABEL: owner},
        "managedFields": [{"manager": "maestro-operator"}],
    }
    return {"metadata": meta, **extra}


def names(found: list[dict[str, Any]] | None) -> list[str]:
    assert found is not None
    return sorted(o["metadata"]["name"] for o in found)


def test_a_kind_is_not_read_from_the_store_before_its_first_list() -> None:
    store = Store(LABEL)
    store.put(SERVICE, obj("a", "m", "5"))
    assert store.owned(SERVICE, "ns", "m") is None
    store.replace(SERVICE, [obj("a", "m", "5")])
    assert store.synced(SERVICE) and not store.synced(DEPLOYMENT)
    assert names(store.owned(SERVICE, "ns", "m")) == ["a"]


def test_owned_objects_are_of_the_namespace_and_label_value_with_kind_not_managed_fields() -> None:
    store = Store(LABEL)
    store.replace(
        SERVICE,
        [obj("a", "m", "1"), obj("b", "other", "2"), obj("c", "m", "3", namespace="elsewhere")],
    )
    [found] = store.owned(SERVICE, "ns", "m") or []
    assert found["apiVersion"] == "v1" and found["kind"] == "Service"
    assert "managedFields" not in found["metadata"]
    assert found["metadata"]["resourceVersion"] == "1"


def test_a_relist_replaces_the_kind_and_tells_what_changed_while_nobody_watched() -> None:
    store = Store(LABEL)
    assert store.replace(SERVICE, [obj("a", "m", "1"), obj("b", "m", "2")]) == ([], [])
    changed, gone = store.replace(
        SERVICE, [obj("b", "m", "7"), obj("c", "m", "8"), obj("d", "m", "9")]
    )
    assert names(changed) == ["b", "c", "d"] and names(gone) == ["a"]
    assert names(store.owned(SERVICE, "ns", "m")) == ["b", "c", "d"]
    changed, gone = store.replace(SERVICE, [obj("b", "m", "7"), obj("c", "m", "10")])
    assert names(changed) == ["c"] and names(gone) == ["d"]


def test_an_older_version_never_replaces_a_newer_one_written_through() -> None:
    store = Store(LABEL)
    store.replace(DEPLOYMENT, [])
    assert store.put(DEPLOYMENT, obj("d", "m", "10", status={"readyReplicas": 2}))
    # The watch brings the same object's earlier version after the apply's answer.
    assert not store.put(DEPLOYMENT, obj("d", "m", "9", status={"readyReplicas": 0}))
    [kept] = store.owned(DEPLOYMENT, "ns", "m") or []
    assert kept["status"] == {"readyReplicas": 2}
    assert store.put(DEPLOYMENT, obj("d", "m", "11", status={"readyReplicas": 3}))
    store.remove(DEPLOYMENT, "ns", "d")
    assert store.owned(DEPLOYMENT, "ns", "m") == []


def test_a_watch_body_becomes_events_and_bookmarks_pass_through() -> None:
    lines = [
        json.dumps({"type": "ADDED", "object": obj("a", "m", "3")}).encode(),
        b"",
        json.dumps({"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "9"}}}).encode(),
        json.dumps({"type": "DELETED", "object": obj("a", "m", "10")}).encode(),
    ]
    events = [(kind, o["metadata"].get("resourceVersion")) for kind, o in watch_events(lines)]
    assert events == [("ADDED", "3"), ("BOOKMARK", "9"), ("DELETED", "10")]


def test_a_watch_error_410_asks_for_a_relist_and_others_fail() -> None:
    gone = json.dumps({"type": "ERROR", "object": {"code": 410, "message": "too old"}})
    with pytest.raises(WatchGone, match="too old"):
        list(watch_events([gone.encode()]))
    denied = json.dumps({"type": "ERROR", "object": {"code": 403, "message": "forbidden"}})
    with pytest.raises(RuntimeError, match="forbidden"):
        list(watch_events([denied.encode()]))


@pytest.mark.parametrize(
    ("patterns", "namespace", "served"),
    [
        ((), "anything", True),
        (("team-a",), "team-a", True),
        (("team-a",), "team-b", False),
        (("team-*",), "team-b", True),
        (("team-*", "!team-x"), "team-x", False),
        (("!kube-*",), "default", True),
        (("!kube-*",), "kube-system", False),
    ],
)
def test_the_namespaces_served_follow_kopfs_globs(
    patterns: tuple[str, ...], namespace: str, served: bool
) -> None:
    assert serves(namespace, patterns) is served


def test_without_a_label_every_object_of_the_namespace_is_one_group() -> None:
    store = Store(None)
    store.replace(SERVICE, [obj("a", "m", "1"), obj("b", "other", "2"), obj("c", "m", "3", "x")])
    assert names(store.owned(SERVICE, "ns", "")) == ["a", "b"]
    assert names(store.owned(SERVICE, "x", "")) == ["c"]
