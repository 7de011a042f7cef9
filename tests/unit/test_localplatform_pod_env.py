"""The local pod runner's container environment, as a kubelet builds it: literals with
$(VAR) expansion, the downward API, Secret and ConfigMap keys and envFrom, resource
fields, given the Secrets and ConfigMaps as plain data."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from maestro.localplatform.pods.env import (
    EnvSources,
    SourceRef,
    SourceUnavailable,
    container_env,
    decode_secret_data,
    expand,
    field_ref,
    pod_base_env,
    referenced_sources,
)

pytestmark = pytest.mark.unit

BASE = {"PATH": "/venv/bin:/usr/bin", "HOME": "/pods/p"}
POD: dict[str, Any] = {
    "metadata": {
        "namespace": "team-a",
        "name": "iris-0",
        "uid": "u-123",
        "labels": {"app": "iris", "odd": "$(HOME)"},
        "annotations": {"note": "hi"},
    },
    "spec": {"nodeName": "kwok-node-0", "serviceAccountName": "trainer"},
    "status": {"podIP": "10.244.0.9", "hostIP": "10.244.0.9"},
}
DB = SourceRef("secret", "db")
SETTINGS = SourceRef("cm", "settings")
SOURCES = EnvSources(
    data={
        DB: {"url": "postgres://db", "user": "$(HOME)"},
        SETTINGS: {"LEVEL": "debug", "url": "from-cm"},
    },
    unavailable={
        SourceRef("secret", "gone"): "(404)\nReason: Not Found",
        SourceRef("cm", "gone"): "(403)\nReason: Forbidden",
    },
)


def literal(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def from_field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def from_key(name: str, kind: str, source: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": source, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {kind: ref}}


def env_of(*items: dict[str, Any], **container: Any) -> dict[str, str]:
    return container_env(BASE, {"name": "main", "env": list(items), **container}, POD, SOURCES)


@pytest.mark.parametrize(
    ("value", "env", "expanded"),
    [
        pytest.param("plain", {}, "plain", id="literal"),
        pytest.param("$(A)", {"A": "1"}, "1", id="reference"),
        pytest.param("x$(A)y$(B)z", {"A": "1", "B": "2"}, "x1y2z", id="several"),
        pytest.param("$(NOPE)", {"A": "1"}, "$(NOPE)", id="undefined-left-as-written"),
        pytest.param("$$(A)", {"A": "1"}, "$(A)", id="escaped-reference"),
        pytest.param("a$$b", {}, "a$b", id="double-dollar"),
        pytest.param("$$$(A)", {"A": "1"}, "$1", id="escape-then-reference"),
        pytest.param("$(A", {"A": "1"}, "$(A", id="unclosed"),
        pytest.param("$(1A)", {"1A": "1"}, "$(1A)", id="not-a-name"),
        pytest.param("$(A.b-c_1)", {"A.b-c_1": "ok"}, "ok", id="dots-and-dashes"),
        pytest.param("$A ${A}", {"A": "1"}, "$A ${A}", id="shell-syntax-untouched"),
        pytest.param("$(A)", {"A": "$(B)", "B": "2"}, "$(B)", id="not-recursive"),
    ],
)
def test_expand(value: str, env: dict[str, str], expanded: str) -> None:
    assert expand(value, env) == expanded


@pytest.mark.parametrize(
    ("path", "value"),
    [
        pytest.param("metadata.name", "iris-0", id="name"),
        pytest.param("metadata.namespace", "team-a", id="namespace"),
        pytest.param("metadata.uid", "u-123", id="uid"),
        pytest.param("spec.nodeName", "kwok-node-0", id="node"),
        pytest.param("spec.serviceAccountName", "trainer", id="service-account"),
        pytest.param("status.podIP", "10.244.0.9", id="pod-ip"),
        pytest.param("status.podIPs", "10.244.0.9", id="pod-ips"),
        pytest.param("status.hostIP", "10.244.0.9", id="host-ip"),
        pytest.param("metadata.labels['app']", "iris", id="label"),
        pytest.param("metadata.annotations['note']", "hi", id="annotation"),
        pytest.param("metadata.labels['absent']", "", id="absent-label"),
    ],
)
def test_field_ref(path: str, value: str) -> None:
    assert field_ref(POD, path) == value
    assert env_of(from_field("X", path))["X"] == value


def test_field_ref_of_a_pod_without_an_address_yet_is_empty() -> None:
    pending = {**POD, "status": None}
    assert field_ref(pending, "status.podIP") == ""


def test_an_unsupported_field_ref_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unsupported fieldRef 'spec\.containers'"):
        env_of(from_field("X", "spec.containers"))


ENV_CASES = [
    pytest.param([literal("A", "1")], {"A": "1"}, id="literal"),
    pytest.param([{"name": "A"}], {"A": ""}, id="neither-value-nor-valueFrom"),
    pytest.param([literal("A", "1"), literal("B", "$(A)-2")], {"A": "1", "B": "1-2"},
                 id="earlier-var"),
    pytest.param([literal("B", "$(A)"), literal("A", "1")], {"A": "1", "B": "$(A)"},
                 id="later-var-not-yet"),
    pytest.param([literal("A", "$(HOME)/x")], {"A": "/pods/p/x"}, id="base-env"),
    pytest.param([literal("A", "$(NOPE)")], {"A": "$(NOPE)"}, id="undefined"),
    pytest.param([literal("A", "$$(HOME)")], {"A": "$(HOME)"}, id="escaped"),
    pytest.param([literal("A", "1"), literal("A", "2")], {"A": "2"}, id="last-wins"),
    pytest.param([literal("HOME", "/elsewhere")], {"HOME": "/elsewhere"}, id="overrides-base"),
    pytest.param([from_field("A", "metadata.labels['odd']")], {"A": "$(HOME)"},
                 id="field-values-not-expanded"),
    pytest.param([{"name": "A", "value": "v", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}],
                 {"A": "v"}, id="value-wins-over-valueFrom"),
    pytest.param([from_key("A", "secretKeyRef", "db", "url")], {"A": "postgres://db"},
                 id="secret-key"),
    pytest.param([from_key("A", "configMapKeyRef", "settings", "LEVEL")], {"A": "debug"},
                 id="configmap-key"),
    pytest.param([from_key("A", "secretKeyRef", "db", "user")], {"A": "$(HOME)"},
                 id="secret-values-not-expanded"),
    pytest.param([literal("A", "1"), from_key("A", "secretKeyRef", "db", "nope", optional=True)],
                 {"A": "1"}, id="optional-missing-key-leaves-var"),
    pytest.param([from_key("A", "secretKeyRef", "gone", "url", optional=True)], {},
                 id="optional-missing-secret-unset"),
    pytest.param([from_key("A", "configMapKeyRef", "gone", "url", optional=True)], {},
                 id="optional-missing-configmap-unset"),
    pytest.param([{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}],
                 {"A": "2"}, id="resource-limit"),
    pytest.param([{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu"}}}],
                 {"A": "0"}, id="resource-unset"),
]  # fmt: skip


@pytest.mark.parametrize(("items", "expected"), ENV_CASES)
def test_env(items: list[dict[str, Any]], expected: dict[str, str]) -> None:
    env = env_of(*items, resources={"limits": {"cpu": "2"}})
    names = {item["name"] for item in items}
    assert {k: v for k, v in env.items() if k in names} == expected
    assert {k: v for k, v in env.items() if k not in names} == {
        **{k: v for k, v in BASE.items() if k not in names},
        "CUDA_VISIBLE_DEVICES": "",  # no nvidia.com/gpu limits: no GPU (gpu_env)
    }


@pytest.mark.parametrize(
    ("item", "error", "message"),
    [
        pytest.param(
            from_key("A", "secretKeyRef", "db", "nope"),
            KeyError,
            "secret team-a/db has no key 'nope'",
            id="missing-secret-key",
        ),
        pytest.param(
            from_key("A", "configMapKeyRef", "settings", "nope"),
            KeyError,
            "cm team-a/settings has no key 'nope'",
            id="missing-configmap-key",
        ),
        pytest.param(
            from_key("A", "secretKeyRef", "gone", "url"),
            SourceUnavailable,
            "(404)\nReason: Not Found",
            id="unreadable-secret",
        ),
        pytest.param(
            from_key("A", "configMapKeyRef", "gone", "url"),
            SourceUnavailable,
            "(403)\nReason: Forbidden",
            id="unreadable-configmap",
        ),
        pytest.param(
            from_key("A", "secretKeyRef", "never-read", "url"),
            SourceUnavailable,
            "secret team-a/never-read was not read",
            id="not-read",
        ),
    ],
)
def test_a_required_reference_that_cannot_be_resolved_fails(
    item: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        env_of(item)
    text = raised.value.args[0]
    assert text == message


ENV_FROM_CASES = [
    pytest.param([{"configMapRef": {"name": "settings"}}], [],
                 {"LEVEL": "debug", "url": "from-cm"}, id="configmap"),
    pytest.param([{"secretRef": {"name": "db"}, "prefix": "DB_"}], [],
                 {"DB_url": "postgres://db", "DB_user": "$(HOME)"}, id="secret-with-prefix"),
    pytest.param([{"configMapRef": {"name": "settings"}, "secretRef": {"name": "db"}}], [],
                 {"LEVEL": "debug", "url": "postgres://db", "user": "$(HOME)"},
                 id="secret-after-configmap-in-one-entry"),
    pytest.param([{"secretRef": {"name": "db"}}, {"configMapRef": {"name": "settings"}}], [],
                 {"LEVEL": "debug", "url": "from-cm", "user": "$(HOME)"}, id="later-entry-wins"),
    pytest.param([{"configMapRef": {"name": "settings"}}], [literal("LEVEL", "info")],
                 {"LEVEL": "info", "url": "from-cm"}, id="env-wins-over-envFrom"),
    pytest.param([{"configMapRef": {"name": "settings"}}], [literal("X", "$(LEVEL)")],
                 {"LEVEL": "debug", "url": "from-cm", "X": "debug"}, id="env-expands-envFrom"),
    pytest.param([{"secretRef": {"name": "gone", "optional": True}}], [], {},
                 id="optional-missing-skipped"),
]  # fmt: skip


@pytest.mark.parametrize(("env_from", "items", "expected"), ENV_FROM_CASES)
def test_env_from(
    env_from: list[dict[str, Any]], items: list[dict[str, Any]], expected: dict[str, str]
) -> None:
    env = env_of(*items, envFrom=env_from)
    made = {k: v for k, v in env.items() if k not in BASE}
    assert made.pop("CUDA_VISIBLE_DEVICES") == ""  # gpu_env: no nvidia.com/gpu limits
    assert made == expected


def test_a_required_env_from_source_that_cannot_be_read_fails() -> None:
    with pytest.raises(SourceUnavailable, match="Forbidden"):
        env_of(envFrom=[{"configMapRef": {"name": "gone"}}])


def test_the_base_env_is_not_changed() -> None:
    before = dict(BASE)
    env_of(literal("HOME", "/x"), envFrom=[{"configMapRef": {"name": "settings"}}])
    assert before == BASE


def test_referenced_sources_are_the_ones_looked_up_each_once_in_order() -> None:
    container = {
        "envFrom": [{"secretRef": {"name": "db"}, "configMapRef": {"name": "settings"}}],
        "env": [
            from_key("A", "secretKeyRef", "db", "url"),
            from_key("B", "configMapKeyRef", "other", "k"),
            {"name": "C", "value": "v", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            from_field("D", "metadata.name"),
            literal("E", "1"),
        ],
    }
    assert referenced_sources(container) == [
        SETTINGS,
        DB,
        SourceRef("cm", "other"),
    ]


def test_secret_data_is_decoded() -> None:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in {"a": "1", "b": "é"}.items()}
    assert decode_secret_data(encoded) == {"a": "1", "b": "é"}
    assert decode_secret_data(None) == {}


def test_pod_base_env() -> None:
    env = pod_base_env(
        venv_bin=Path("/repo/.venv/bin"),
        host_path="/usr/bin:/bin",
        workdir=Path("/pods/p"),
        hostname="iris-0",
        ip="10.244.0.9",
    )
    assert env["PATH"].split(":") == ["/repo/.venv/bin", "/usr/bin", "/bin"]
    assert (env["HOME"], env["HOSTNAME"], env["MAESTRO_BIND_HOST"]) == (
        "/pods/p",
        "iris-0",
        "10.244.0.9",
    )
    assert env["PYTHONUNBUFFERED"] == "1"


@pytest.mark.parametrize(
    ("resources", "visible"),
    [
        ({}, ""),
        ({"limits": {"cpu": "1"}}, ""),
        ({"limits": {"nvidia.com/gpu": "0"}}, ""),
        ({"limits": {"nvidia.com/gpu": 1}}, None),
    ],
    ids=["no-resources", "cpu-only", "zero-gpus", "one-gpu"],
)
def test_only_a_container_with_gpu_limits_sees_gpus(
    resources: dict[str, Any], visible: str | None
) -> None:
    env = env_of(resources=resources)
    assert env.get("CUDA_VISIBLE_DEVICES") == visible
    # The container's own env still wins.
    mine = env_of({"name": "CUDA_VISIBLE_DEVICES", "value": "1"}, resources=resources)
    assert mine["CUDA_VISIBLE_DEVICES"] == "1"
