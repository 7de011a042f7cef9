"""Reading and writing objects of the cluster under test through the real kubectl."""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.conftest import Cluster


def apply(cluster: Cluster, namespace: str, *objs: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(objs))


def get(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
    proc = cluster.kubectl(
        "get", kind, name, "-n", namespace, "-o", "json", "--ignore-not-found", check=False
    )
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def items(cluster: Cluster, namespace: str, kind: str, selector: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", kind, "-n", namespace, "-l", selector, "-o", "json").stdout
    return list(json.loads(out)["items"])


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def events(cluster: Cluster, namespace: str, name: str) -> list[tuple[str, str, str]]:
    out = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    return [
        (e["type"], e["reason"], e.get("message", ""))
        for e in json.loads(out)["items"]
        if e["involvedObject"]["name"] == name
    ]
