"""Vault on the local platform: the real server (built by `make vault`) with file storage,
initialised once and unsealed at every start by the platform (its unseal key and root
token stay in the platform's state dir, git-ignored, never printed), with KV v2 at
`secret/` and the Kubernetes auth method verifying ServiceAccount tokens against the
local API server (TokenReview, as the reviewer ServiceAccount `vault-auth`).

The operator gets the Vault policy `maestro-operator` (security.vault_access): in the
cluster through the Kubernetes-auth role of that name, bound to its ServiceAccount; as a
process of the test suite through a token in `operator_token_file`. Beside Vault runs
the stand-in for the Vault Agent injector's webhook (vault_injector)."""

from __future__ import annotations

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac

from maestro.localplatform.clusterconfig import REPO, ClusterConfig, ClusterError
from maestro.localplatform.kubectl import apply_manifests, kubectl
from maestro.localplatform.pki import Pki
from maestro.localplatform.vault_injection import webhook_configuration
from maestro.security.vault_access import OPERATOR_POLICY_NAME, operator_policy_hcl

AUTH_MOUNT = "kubernetes"
REVIEWER = ("kube-system", "vault-auth")
OPERATOR_SA = ("maestro-system", "maestro-operator")
# The secret paths ModelDeployments may name (the operator's default allowed prefix).
SECRET_PREFIXES = ("secret/data/maestro/",)
REVIEWER_MANIFEST = f"""apiVersion: v1
kind: ServiceAccount
metadata:
  name: {REVIEWER[1]}
  namespace: {REVIEWER[0]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: maestro-local-vault-tokenreview
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:auth-delegator
subjects:
- kind: ServiceAccount
  name: {REVIEWER[1]}
  namespace: {REVIEWER[0]}
"""


@dataclass(frozen=True)
class LocalVault:
    """Where the platform's Vault listens and keeps its files."""

    cfg: ClusterConfig

    @property
    def dir(self) -> Path:
        return self.cfg.state / "vault"

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.cfg.vault_port}"

    @property
    def init_file(self) -> Path:
        return self.dir / "init.json"

    @property
    def operator_token_file(self) -> Path:
        return self.dir / "operator-token"

    @property
    def injector_url(self) -> str:
        return f"https://127.0.0.1:{self.cfg.vault_injector_port}/mutate"

    def root_token(self) -> str:
        token: str = json.loads(self.init_file.read_text())["root_token"]
        return token

    def root_client(self) -> hvac.Client:
        return hvac.Client(url=self.address, token=self.root_token(), timeout=10)


def server_config(vault: LocalVault) -> str:
    return f"""storage "file" {{
  path = "{vault.dir / "data"}"
}}
listener "tcp" {{
  address     = "127.0.0.1:{vault.cfg.vault_port}"
  tls_disable = true
}}
api_addr      = "{vault.address}"
disable_mlock = true
ui            = false
log_level     = "warn"
"""


def server_argv(vault: LocalVault) -> list[str]:
    return [str(vault.cfg.bin / "vault"), "server", f"-config={vault.dir / 'server.hcl'}"]


def injector_argv(vault: LocalVault, pki: Pki) -> list[str]:
    return [
        sys.executable,
        "-m",
        "maestro.localplatform.vault_injector",
        "--listen",
        f"127.0.0.1:{vault.cfg.vault_injector_port}",
        "--cert",
        str(pki.vault_injector.cert),
        "--key",
        str(pki.vault_injector.key),
        "--vault-address",
        vault.address,
    ]


def _health(vault: LocalVault) -> dict[str, Any] | None:
    """sys/health answers with a status code per state (501 uninitialised, 503 sealed),
    and its body either way; None while nothing answers."""
    url = f"{vault.address}/v1/sys/health"
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            body: dict[str, Any] = json.load(resp)
            return body
    except urllib.error.HTTPError as err:
        try:
            body = json.load(err)
        except ValueError:
            return None
        return body
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _write_private(path: Path, text: str) -> None:
    """Owner-only from the start: the unseal key and tokens are never readable by others."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def start_server(vault: LocalVault) -> None:
    """Start Vault (unless it runs), initialise it the first time, unseal it."""
    if not (vault.cfg.bin / "vault").is_file():
        raise ClusterError(
            f"missing {vault.cfg.bin / 'vault'}: build it with `make vault` "
            "(the first build takes about 10 minutes, see README)"
        )
    vault.dir.mkdir(parents=True, exist_ok=True)
    (vault.dir / "server.hcl").write_text(server_config(vault))
    procs = vault.cfg.processes()
    procs.start("vault", server_argv(vault), env={**os.environ, "VAULT_LOG_FORMAT": "standard"})
    deadline = time.monotonic() + 30
    health = _health(vault)
    while health is None:
        if procs.pid("vault") is None or time.monotonic() > deadline:
            raise ClusterError(f"Vault did not start; its log ends:\n{procs.tail('vault')}")
        time.sleep(0.2)
        health = _health(vault)
    client = hvac.Client(url=vault.address, timeout=10)
    if not health.get("initialized"):
        answer = client.sys.initialize(secret_shares=1, secret_threshold=1)
        _write_private(vault.init_file, json.dumps(answer))
    if client.sys.is_sealed():
        keys = json.loads(vault.init_file.read_text())["keys_base64"]
        client.sys.submit_unseal_key(key=keys[0])
    while _health(vault) is None or (_health(vault) or {}).get("sealed", True):
        if time.monotonic() > deadline:
            raise ClusterError(f"Vault stays sealed; its log ends:\n{procs.tail('vault')}")
        time.sleep(0.2)


def configure(vault: LocalVault, pki: Pki) -> None:
    """KV v2 at secret/, Kubernetes auth against the local API server, the operator's policy,
    role and token (idempotent: done at every start)."""
    client = vault.root_client()
    if "secret/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    if f"{AUTH_MOUNT}/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("kubernetes", path=AUTH_MOUNT)
    apply_manifests(vault.cfg, REVIEWER_MANIFEST, force=False)
    reviewer_jwt = kubectl(
        vault.cfg, "create", "token", REVIEWER[1], "-n", REVIEWER[0], "--duration=8760h"
    ).stdout.strip()
    client.auth.kubernetes.configure(
        kubernetes_host=vault.cfg.server,
        kubernetes_ca_cert=pki.ca.cert.read_text(),
        token_reviewer_jwt=reviewer_jwt,
        disable_local_ca_jwt=True,
        mount_point=AUTH_MOUNT,
    )
    client.sys.create_or_update_acl_policy(
        OPERATOR_POLICY_NAME, operator_policy_hcl(AUTH_MOUNT, SECRET_PREFIXES)
    )
    client.auth.kubernetes.create_role(
        OPERATOR_POLICY_NAME,
        bound_service_account_names=[OPERATOR_SA[1]],
        bound_service_account_namespaces=[OPERATOR_SA[0]],
        policies=[OPERATOR_POLICY_NAME],
        ttl="1h",
        mount_point=AUTH_MOUNT,
    )
    _ensure_operator_token(vault, client)


def _ensure_operator_token(vault: LocalVault, root: hvac.Client) -> None:
    """A periodic token with only the operator's policy, for operator processes that run
    outside the cluster (the test suite's); a valid one is kept."""
    if vault.operator_token_file.exists():
        probe = hvac.Client(url=vault.address, token=vault.operator_token_file.read_text())
        try:
            probe.auth.token.lookup_self()
            return
        except hvac.exceptions.VaultError:
            pass
    answer = root.auth.token.create(
        policies=[OPERATOR_POLICY_NAME], period="24h", no_parent=True, display_name="operator"
    )
    _write_private(vault.operator_token_file, answer["auth"]["client_token"])


def start_injector(vault: LocalVault, pki: Pki) -> None:
    procs = vault.cfg.processes()
    procs.start(
        "vault-injector",
        injector_argv(vault, pki),
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    health = vault.injector_url.replace("/mutate", "/healthz")
    deadline = time.monotonic() + 20
    ctx = ssl.create_default_context(cafile=str(pki.ca.cert))
    while True:
        try:
            with urllib.request.urlopen(health, timeout=1, context=ctx):
                break
        except (urllib.error.URLError, OSError):
            if procs.pid("vault-injector") is None or time.monotonic() > deadline:
                raise ClusterError(
                    f"the Vault Agent injector did not start; its log ends:\n"
                    f"{procs.tail('vault-injector')}"
                ) from None
            time.sleep(0.2)
    webhook = webhook_configuration(vault.injector_url, pki.ca.cert.read_bytes())
    apply_manifests(vault.cfg, json.dumps(webhook))


def up(cfg: ClusterConfig, pki: Pki) -> LocalVault:
    vault = LocalVault(cfg)
    start_server(vault)
    configure(vault, pki)
    start_injector(vault, pki)
    return vault


def stop_server(cfg: ClusterConfig) -> None:
    """Stop Vault alone (a fault test's "Vault down"); `start_server` brings it back."""
    cfg.processes().stop("vault")
