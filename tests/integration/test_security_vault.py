"""Per-ModelDeployment Vault access against a real Vault (`make vault` builds it).

What the operator writes is read back with a root token; what a deployment's policy and the
operator's own policy allow is checked with tokens that carry only those policies. The
Kubernetes-auth login itself needs the cluster and is tested there.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import hvac.exceptions
import pytest

from maestro.security.vault_access import (
    OPERATOR_POLICY_NAME,
    DeploymentAccess,
    deployment_access,
    operator_policy_hcl,
    policy_hcl,
)
from maestro.security.vault_client import (
    VaultDenied,
    VaultUnavailable,
    apply_access,
    connect,
    missing_secrets,
    read_kv,
    remove_access,
    write_kv,
)
from maestro.security.vault_settings import VaultSettings

pytestmark = pytest.mark.services

REPO = Path(__file__).resolve().parents[2]
VAULT_BIN = REPO / ".maestro/bin/vault"
AUTH_MOUNT = "kubernetes"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# A real Vault of the module's own, in dev mode: the tests write policies and roles of any
# name and need no Kubernetes (the platform's Vault is the cluster tests').


@dataclass(frozen=True)
class VaultServer:
    address: str
    root_token: str


def _healthy(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"{address}/v1/sys/health", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="module")
def vault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VaultServer]:
    """A dev-mode Vault of the module's own (in memory, unsealed, kv-v2 at secret/)."""
    if not VAULT_BIN.is_file():
        pytest.fail(f"{VAULT_BIN} is missing: build it with `make vault`", pytrace=False)
    port = free_port()
    server = VaultServer(f"http://127.0.0.1:{port}", f"root-{secrets.token_hex(16)}")
    log = tmp_path_factory.mktemp("vault") / "vault.log"
    # The root token goes in the environment rather than -dev-root-token-id, so it is not in
    # the process list; -dev-no-store-token keeps it out of ~/.vault-token.
    env = {**os.environ, "VAULT_DEV_ROOT_TOKEN_ID": server.root_token}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(VAULT_BIN),
                "server",
                "-dev",
                "-dev-no-store-token",
                f"-dev-listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 30
        while not _healthy(server.address):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Vault dev server did not start:\n{log.read_text()}", pytrace=False)
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# ------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_vault_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings built here see only what the tests give them."""
    for name in list(os.environ):
        if name.startswith(("MAESTRO_VAULT_", "VAULT_")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def root(vault_server: VaultServer) -> hvac.Client:
    """A root client, with the Kubernetes auth method and the operator's policy in place."""
    client = hvac.Client(url=vault_server.address, token=vault_server.root_token, timeout=5)
    if f"{AUTH_MOUNT}/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("kubernetes", path=AUTH_MOUNT)
    client.sys.create_or_update_acl_policy(OPERATOR_POLICY_NAME, operator_policy_hcl(AUTH_MOUNT))
    return client


def token_client(root: hvac.Client, *policies: str) -> hvac.Client:
    """A client whose token carries only these policies (and Vault's default)."""
    token = root.auth.token.create(policies=list(policies), ttl="10m")["auth"]["client_token"]
    return hvac.Client(url=root.url, token=token, timeout=5)


def new_access(*names: str, namespace: str = "team-a") -> DeploymentAccess:
    """A ModelDeployment of its own per test, reading secret/data/maestro/<name>."""
    md = f"md-{uuid.uuid4().hex[:8]}"
    return deployment_access(
        namespace, md, f"{md}-serving", [f"secret/data/maestro/{md}/{n}" for n in names]
    )


def test_apply_access_writes_the_policy_and_the_role(root: hvac.Client) -> None:
    access = new_access("db", "api")
    apply_access(root, access, AUTH_MOUNT)

    policy = root.sys.read_acl_policy(access.policy)["data"]["policy"]
    assert policy == policy_hcl(access)
    role = root.auth.kubernetes.read_role(access.role, mount_point=AUTH_MOUNT)
    assert role["bound_service_account_names"] == [access.service_account]
    assert role["bound_service_account_namespaces"] == ["team-a"]
    assert role["token_policies"] == [access.policy]
    assert (role["token_ttl"], role["token_max_ttl"]) == (3600, 3600)


def test_apply_access_is_idempotent_and_follows_the_spec(root: hvac.Client) -> None:
    access = new_access("db")
    apply_access(root, access, AUTH_MOUNT)
    apply_access(root, access, AUTH_MOUNT)
    changed = deployment_access(
        access.namespace, access.name, access.service_account, ["secret/data/maestro/other"]
    )
    apply_access(root, changed, AUTH_MOUNT)

    assert root.sys.read_acl_policy(access.policy)["data"]["policy"] == policy_hcl(changed)


def test_remove_access_removes_both_and_tolerates_missing(root: hvac.Client) -> None:
    access = new_access("db")
    apply_access(root, access, AUTH_MOUNT)
    remove_access(root, access.role, AUTH_MOUNT)

    with pytest.raises(hvac.exceptions.InvalidPath):
        root.sys.read_acl_policy(access.policy)
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.auth.kubernetes.read_role(access.role, mount_point=AUTH_MOUNT)
    remove_access(root, access.role, AUTH_MOUNT)


def test_remove_access_touches_only_deployment_names(root: hvac.Client) -> None:
    with pytest.raises(ValueError, match="not a ModelDeployment"):
        remove_access(root, OPERATOR_POLICY_NAME, AUTH_MOUNT)
    assert root.sys.read_acl_policy(OPERATOR_POLICY_NAME)["data"]["policy"]


def test_kv_round_trip(root: hvac.Client) -> None:
    path = f"secret/data/maestro/{uuid.uuid4().hex[:8]}"
    write_kv(root, path, {"user": "iris", "value": "s3cret"})
    assert read_kv(root, path) == {"user": "iris", "value": "s3cret"}
    write_kv(root, path, {"value": "rotated"})
    assert read_kv(root, path) == {"value": "rotated"}
    with pytest.raises(LookupError, match="no secret"):
        read_kv(root, f"{path}-missing")


def test_kv_paths_are_kv_v2_data_paths(root: hvac.Client) -> None:
    with pytest.raises(ValueError, match="KV v2"):
        read_kv(root, "secret/maestro/iris")


def test_a_deployments_token_reads_its_paths_and_no_other(root: hvac.Client) -> None:
    mine, theirs = new_access("db"), new_access("db")
    for access in (mine, theirs):
        apply_access(root, access, AUTH_MOUNT)
        write_kv(root, access.paths[0], {"value": access.name})

    # What a login with mine.role yields: a token with mine.policy (the role says so above).
    client = token_client(root, mine.policy)
    assert read_kv(client, mine.paths[0]) == {"value": mine.name}
    with pytest.raises(VaultDenied, match=f"reading {theirs.paths[0]}"):
        read_kv(client, theirs.paths[0])
    with pytest.raises(VaultDenied):
        write_kv(client, mine.paths[0], {"value": "overwritten"})


def test_the_operator_manages_access_but_reads_no_secret(root: hvac.Client) -> None:
    access = new_access("db")
    write_kv(root, access.paths[0], {"value": "s3cret"})
    operator = token_client(root, OPERATOR_POLICY_NAME)

    apply_access(operator, access, AUTH_MOUNT)
    assert root.sys.read_acl_policy(access.policy)["data"]["policy"] == policy_hcl(access)
    with pytest.raises(VaultDenied, match=f"reading {access.paths[0]}"):
        read_kv(operator, access.paths[0])
    # Nor may it write policies or roles of other names (say, one granting itself more).
    with pytest.raises(hvac.exceptions.Forbidden):
        operator.sys.create_or_update_acl_policy("other", 'path "*" { capabilities = ["read"] }')
    with pytest.raises(hvac.exceptions.Forbidden):
        operator.auth.kubernetes.create_role(
            "other", ["default"], ["default"], policies=["root"], mount_point=AUTH_MOUNT
        )
    remove_access(operator, access.role, AUTH_MOUNT)
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.sys.read_acl_policy(access.policy)


def test_missing_secrets_reads_metadata_only(root: hvac.Client) -> None:
    base = f"secret/data/maestro/{uuid.uuid4().hex[:8]}"
    written, never, deleted = f"{base}/written", f"{base}/never", f"{base}/deleted"
    write_kv(root, written, {"value": "1"})
    write_kv(root, deleted, {"value": "1"})
    root.secrets.kv.v2.delete_latest_version_of_secret(
        path=deleted.removeprefix("secret/data/"), mount_point="secret"
    )
    policy = f"maestro-operator-{uuid.uuid4().hex[:8]}"
    root.sys.create_or_update_acl_policy(
        policy, operator_policy_hcl(AUTH_MOUNT, metadata_prefixes=["secret/data/maestro/"])
    )
    operator = token_client(root, policy)

    assert missing_secrets(operator, [written, never, deleted, never]) == [never, deleted]
    with pytest.raises(VaultDenied):
        read_kv(operator, written)


def test_missing_secrets_needs_the_metadata_grant(root: hvac.Client) -> None:
    path = f"secret/data/maestro/{uuid.uuid4().hex[:8]}"
    with pytest.raises(VaultDenied, match="reading secret/metadata/maestro/"):
        missing_secrets(token_client(root, OPERATOR_POLICY_NAME), [path])


def test_connect_with_a_token_file_reads_it_at_each_login(
    root: hvac.Client, vault_server: VaultServer, tmp_path: Path
) -> None:
    path = f"secret/data/maestro/{uuid.uuid4().hex[:8]}"
    write_kv(root, path, {"k": "v"})
    token_file = tmp_path / "token"
    settings = VaultSettings(addr=vault_server.address, token_file=token_file)

    first = token_client(root, "root").token
    token_file.write_text(first + "\n")
    assert read_kv(connect(settings), path) == {"k": "v"}

    # Rotated: the old token is revoked and the file holds a new one.
    second = token_client(root, "root").token
    token_file.write_text(second)
    root.auth.token.revoke(first)
    assert connect(settings).token == second


def test_connect_with_a_refused_token_is_denied(vault_server: VaultServer, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    bogus = f"hvs.{secrets.token_hex(12)}"
    token_file.write_text(bogus)
    settings = VaultSettings(addr=vault_server.address, token_file=token_file)

    with pytest.raises(VaultDenied) as denied:
        connect(settings)
    assert vault_server.address in str(denied.value)
    assert bogus not in str(denied.value)


def test_connect_without_the_token_file_is_unavailable(
    vault_server: VaultServer, tmp_path: Path
) -> None:
    missing = tmp_path / "not-yet-written"
    settings = VaultSettings(addr=vault_server.address, token_file=missing)
    with pytest.raises(VaultUnavailable, match=str(missing)):
        connect(settings)


def test_nothing_listening_is_unavailable_and_the_message_has_no_token(
    vault_server: VaultServer, tmp_path: Path
) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    token_file = tmp_path / "token"
    token_file.write_text(vault_server.root_token)
    settings = VaultSettings(addr=address, token_file=token_file, timeout_seconds=2)

    with pytest.raises(VaultUnavailable) as unavailable:
        connect(settings)
    message = str(unavailable.value)
    assert address in message
    assert "cannot connect" in message
    assert vault_server.root_token not in message
    assert vault_server.root_token not in str(unavailable.value.__cause__)
