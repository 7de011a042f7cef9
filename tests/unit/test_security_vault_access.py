"""Per-ModelDeployment Vault access as pure functions: names, policy text, role body, the
path rules, the operator's own policy, and the settings that carry the prefixes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from maestro.security.vault_access import (
    OPERATOR_POLICY_NAME,
    DeploymentAccess,
    deployment_access,
    disallowed_paths,
    kv2_metadata_path,
    operator_policy_hcl,
    path_allowed,
    policy_hcl,
    role_body,
    role_name,
)
from maestro.security.vault_settings import VaultSettings

pytestmark = pytest.mark.unit

MAESTRO = ["secret/data/maestro/"]
TEAMS = ["secret/data/teams/{namespace}/"]
NO_SLASH = ["secret/data/maestro"]


def iris(*paths: str) -> DeploymentAccess:
    return deployment_access("team-a", "iris", "iris-serving", paths or ["secret/data/maestro/x"])


# --- names -----------------------------------------------------------------------------------


def test_role_and_policy_share_one_name_per_deployment() -> None:
    access = iris()
    assert access.role == access.policy == "maestro-serving-team-a.iris"


def test_names_of_different_deployments_never_collide() -> None:
    # With a dash between them, team-a/b-c and team-a-b/c would both be
    # maestro-serving-team-a-b-c; a namespace holds no dot, so the dot separates them.
    assert role_name("team-a", "b-c") != role_name("team-a-b", "c")
    assert role_name("a", "b.c") == "maestro-serving-a.b.c"
    with pytest.raises(ValueError, match="namespace"):
        deployment_access("a.b", "c", "sa", [])


def test_names_use_only_what_vault_names_allow() -> None:
    name = deployment_access("ns-1", "model.v2-x", "sa", []).role
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


@pytest.mark.parametrize(
    ("namespace", "name", "service_account"),
    [
        ("Team", "iris", "sa"),
        ("team.a", "iris", "sa"),
        ("t" * 64, "iris", "sa"),
        ("team", "Iris", "sa"),
        ("team", "iris\n#", "sa"),
        ("team", "iris", "*"),
        ("team", "iris", ""),
        ("", "iris", "sa"),
    ],
    ids=[
        "upper-case namespace",
        "dotted namespace",
        "namespace too long",
        "upper-case name",
        "newline in name",
        "wildcard service account",
        "empty service account",
        "empty namespace",
    ],
)
def test_deployment_access_refuses_what_kubernetes_would(
    namespace: str, name: str, service_account: str
) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes"):
        deployment_access(namespace, name, service_account, [])


def test_paths_are_sorted_and_unique() -> None:
    access = iris("secret/data/maestro/b", "secret/data/maestro/a", "secret/data/maestro/b")
    assert access.paths == ("secret/data/maestro/a", "secret/data/maestro/b")


def test_access_is_frozen() -> None:
    with pytest.raises(AttributeError):
        iris().namespace = "other"  # type: ignore[misc]


# --- the deployment's policy -----------------------------------------------------------------


def test_policy_reads_exactly_the_paths() -> None:
    text = policy_hcl(iris("secret/data/maestro/iris", "secret/data/maestro/common"))
    assert text == (
        "# Maestro ModelDeployment team-a/iris (ServiceAccount iris-serving): read its secrets.\n"
        'path "secret/data/maestro/common" { capabilities = ["read"] }\n'
        'path "secret/data/maestro/iris" { capabilities = ["read"] }\n'
    )


def test_policy_quotes_paths_as_json() -> None:
    text = policy_hcl(DeploymentAccess("ns", "md", "sa", ('secret/data/x"y',)))
    assert 'path "secret/data/x\\"y" {' in text


def test_policy_without_secrets_allows_nothing() -> None:
    text = policy_hcl(deployment_access("ns", "md", "sa", []))
    assert "path" not in text.replace("ModelDeployment", "")
    assert text.startswith("# Maestro ModelDeployment ns/md")


# --- the deployment's role -------------------------------------------------------------------


def test_role_binds_one_service_account_in_one_namespace_to_the_policy() -> None:
    assert role_body(iris()) == {
        "bound_service_account_names": ["iris-serving"],
        "bound_service_account_namespaces": ["team-a"],
        "policies": ["maestro-serving-team-a.iris"],
        "ttl": 3600,
        "max_ttl": 3600,
    }


def test_role_ttl_is_given_in_seconds() -> None:
    body = role_body(iris(), ttl_seconds=600)
    assert (body["ttl"], body["max_ttl"]) == (600, 600)


def test_role_refuses_a_ttl_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        role_body(iris(), ttl_seconds=0)


def test_role_body_matches_hvacs_create_role() -> None:
    import inspect

    from hvac.api.auth_methods.kubernetes import Kubernetes

    parameters = inspect.signature(Kubernetes.create_role).parameters
    assert set(role_body(iris())) <= set(parameters)


# --- path rules ------------------------------------------------------------------------------

PATH_CASES: list[tuple[str, str, str, list[str], bool]] = [
    ("below the prefix", "secret/data/maestro/iris", "ns", MAESTRO, True),
    ("nested below the prefix", "secret/data/maestro/iris/db", "ns", MAESTRO, True),
    ("outside every prefix", "secret/data/other/iris", "ns", MAESTRO, False),
    ("the prefix itself", "secret/data/maestro/", "ns", MAESTRO, False),
    ("a directory", "secret/data/maestro/iris/", "ns", MAESTRO, False),
    (
        "a sibling of the prefix",
        "secret/data/maestro-other/x",
        "ns",
        ["secret/data/maestro"],
        False,
    ),
    ("prefix without slash, below", "secret/data/maestro/x", "ns", ["secret/data/maestro"], True),
    ("suffix glob", "secret/data/maestro/*", "ns", MAESTRO, False),
    ("glob inside a name", "secret/data/maestro/ir*", "ns", MAESTRO, False),
    ("segment glob", "secret/data/maestro/+/db", "ns", MAESTRO, False),
    ("dot-dot", "secret/data/maestro/../other/x", "ns", MAESTRO, False),
    ("dot-dot in a name", "secret/data/maestro/a..b", "ns", MAESTRO, False),
    ("double slash", "secret/data/maestro//x", "ns", MAESTRO, False),
    ("empty", "", "ns", MAESTRO, False),
    ("own namespace", "secret/data/teams/team-a/db", "team-a", TEAMS, True),
    ("another namespace", "secret/data/teams/team-b/db", "team-a", TEAMS, False),
    ("a namespace sharing a prefix", "secret/data/teams/team-ab/db", "team-a", TEAMS, False),
    ("placeholder left as text", "secret/data/teams/{namespace}/db", "team-a", TEAMS, False),
    ("second prefix", "secret/data/teams/ns/db", "ns", [*MAESTRO, *TEAMS], True),
    ("no prefixes", "secret/data/maestro/iris", "ns", [], False),
    ("glob prefix admits nothing", "secret/data/x/y", "ns", ["secret/data/*/"], False),
    ("empty namespace admits nothing", "secret/data/teams//db", "", TEAMS, False),
]


@pytest.mark.parametrize(
    ("path", "namespace", "prefixes", "allowed"),
    [case[1:] for case in PATH_CASES],
    ids=[case[0] for case in PATH_CASES],
)
def test_path_allowed(path: str, namespace: str, prefixes: list[str], allowed: bool) -> None:
    assert path_allowed(path, namespace, prefixes) is allowed


def test_disallowed_paths_lists_each_refused_path_once_in_order() -> None:
    paths = [
        "secret/data/other/b",
        "secret/data/maestro/ok",
        "secret/data/maestro/*",
        "secret/data/other/b",
    ]
    assert disallowed_paths(paths, "ns", MAESTRO) == [
        "secret/data/other/b",
        "secret/data/maestro/*",
    ]


def test_disallowed_paths_of_allowed_paths_is_empty() -> None:
    assert disallowed_paths(["secret/data/teams/ns/a"], "ns", TEAMS) == []


# --- the operator's policy -------------------------------------------------------------------


def test_operator_policy_manages_deployment_policies_and_roles_only() -> None:
    assert OPERATOR_POLICY_NAME == "maestro-operator"
    lines = [line for line in operator_policy_hcl().splitlines() if not line.startswith("#")]
    caps = '{ capabilities = ["create", "update", "read", "delete"] }'
    assert lines == [
        f'path "sys/policies/acl/maestro-serving-*" {caps}',
        f'path "auth/kubernetes/role/maestro-serving-*" {caps}',
    ]


def test_operator_policy_follows_the_auth_mount() -> None:
    assert 'path "auth/k8s/prod/role/maestro-serving-*"' in operator_policy_hcl("k8s/prod/")


def test_operator_policy_reads_no_secret() -> None:
    assert "secret/" not in operator_policy_hcl()


@pytest.mark.parametrize(
    "mount", ["", "*", "a/../b", 'k"8s'], ids=["empty", "glob", "dots", "quote"]
)
def test_operator_policy_refuses_an_odd_mount(mount: str) -> None:
    with pytest.raises(ValueError, match="auth mount"):
        operator_policy_hcl(mount)


def test_operator_policy_may_read_metadata_below_the_prefixes() -> None:
    text = operator_policy_hcl(metadata_prefixes=[*MAESTRO, *TEAMS, "kv/data/x", *MAESTRO])
    metadata = [line for line in text.splitlines() if "metadata" in line]
    assert metadata == [
        'path "secret/metadata/maestro/*" { capabilities = ["read"] }',
        'path "secret/metadata/teams/+/*" { capabilities = ["read"] }',
        'path "kv/metadata/x/*" { capabilities = ["read"] }',
    ]
    assert "secret/data" not in text


@pytest.mark.parametrize(
    "prefix",
    ["secret/data/teams-{namespace}/", "secret/data/*/", "secret/other/"],
    ids=["placeholder inside a segment", "glob", "not KV v2"],
)
def test_operator_policy_refuses_odd_metadata_prefixes(prefix: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(prefix))):
        operator_policy_hcl(metadata_prefixes=[prefix])


@pytest.mark.parametrize(
    ("path", "metadata"),
    [
        ("secret/data/maestro/iris", "secret/metadata/maestro/iris"),
        ("/kv/team/data/a/b/", "kv/team/metadata/a/b"),
    ],
)
def test_kv2_metadata_path(path: str, metadata: str) -> None:
    assert kv2_metadata_path(path) == metadata


@pytest.mark.parametrize("path", ["secret/maestro/iris", "data/x", "/data/x"])
def test_kv2_metadata_path_needs_a_data_path(path: str) -> None:
    with pytest.raises(ValueError, match="KV v2"):
        kv2_metadata_path(path)


# --- settings --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_vault_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings tests see only the variables they set, whatever the shell exports."""
    for name in list(os.environ):
        if name.startswith("MAESTRO_VAULT_"):
            monkeypatch.delenv(name)


def test_settings_default_to_vault_not_configured() -> None:
    settings = VaultSettings()
    assert not settings.configured
    assert settings.allowed_path_prefixes == ["secret/data/maestro/"]
    assert settings.auth_mount == "kubernetes"
    assert settings.render_interval == "1m"
    assert settings.jwt_path == Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAESTRO_VAULT_ADDR", "https://vault.vault:8200")
    monkeypatch.setenv("MAESTRO_VAULT_AUTH_ROLE", "maestro-operator")
    monkeypatch.setenv("MAESTRO_VAULT_ALLOWED_PATH_PREFIXES", '["secret/data/teams/{namespace}/"]')
    # OperatorConfig's variables share the prefix and must not break these settings.
    monkeypatch.setenv("MAESTRO_VAULT_PORT", "8200")
    settings = VaultSettings()
    assert settings.configured
    assert settings.auth_role == "maestro-operator"
    assert settings.allowed_path_prefixes == ["secret/data/teams/{namespace}/"]


@pytest.mark.parametrize(
    "prefix",
    ["secret/data/maestro", "/secret/data/maestro/", "secret/data/*/", "secret/data/../x/"],
    ids=["no final slash", "absolute", "glob", "dot-dot"],
)
def test_settings_refuse_odd_prefixes(prefix: str) -> None:
    with pytest.raises(ValidationError, match="prefix"):
        VaultSettings(allowed_path_prefixes=[prefix])


def test_settings_need_exactly_one_way_to_log_in() -> None:
    with pytest.raises(ValidationError, match="not both"):
        VaultSettings(addr="http://v:8200", token_file=Path("t"), auth_role="r")
    with pytest.raises(ValidationError, match="token_file or auth_role"):
        VaultSettings(addr="http://v:8200")


@pytest.mark.parametrize("interval", ["1m", "30s", "1h30m", "500ms"])
def test_settings_take_go_durations_as_render_interval(interval: str) -> None:
    assert VaultSettings(render_interval=interval).render_interval == interval


def test_settings_refuse_a_render_interval_the_agent_would_not_parse() -> None:
    with pytest.raises(ValidationError):
        VaultSettings(render_interval="1 minute")
