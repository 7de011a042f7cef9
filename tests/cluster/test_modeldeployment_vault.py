"""spec.secrets end to end on the local platform: the real Vault (KV v2, Kubernetes auth
against the local API server), the injector's webhook stand-in, the real Vault Agent run by
the pod runner as the pods' init container and sidecar, and the operator deployed from
manifests/overlays/local, logging in to Vault as its ServiceAccount.

Each ModelDeployment gets its own ServiceAccount and Vault role: its pods read its secret
and are refused another deployment's (403); a new KV version reaches the running process;
Vault going down and coming back needs no one's help; and the secret's value appears in no
log, Event, status or MLflow record."""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import hvac
import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import infer_signature

from maestro.localplatform import platform
from maestro.localplatform.cluster import ClusterConfig
from maestro.localplatform.clusterconfig import pod_workdir
from maestro.localplatform.vault import LocalVault, start_server, stop_server
from maestro.localplatform.wait import eventually
from maestro.security.vault_client import VaultDenied, read_kv, write_kv
from tests.cluster.modeldeployments import API_VERSION, wait_status
from tests.cluster.objects import apply, get, items, ready
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

ENV = "FEATURE_STORE_TOKEN"
MODEL_CODE = f'''
import hashlib
import os

import mlflow
from mlflow.pyfunc import PythonModel

# Read while loading: the server has set it before.
AT_LOAD = os.environ["{ENV}"]


class SecretDigest(PythonModel):
    """Answers a digest of the secret it sees now (never the value)."""

    def predict(self, context, model_input, params=None):
        value = os.environ["{ENV}"].encode()
        return [int(hashlib.sha256(value).hexdigest()[:12], 16) for _ in range(len(model_input))]


mlflow.models.set_model(SecretDigest())
'''


def digest(value: str) -> int:
    return int(hashlib.sha256(value.encode()).hexdigest()[:12], 16)


@pytest.fixture(scope="module")
def vault(cluster: Cluster) -> LocalVault:
    return LocalVault(ClusterConfig())


@pytest.fixture(scope="module")
def root(vault: LocalVault) -> hvac.Client:
    return vault.root_client()


@pytest.fixture(scope="module")
def digest_model(mlflow_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A registered pyfunc model answering a digest of $FEATURE_STORE_TOKEN."""
    name = f"vault-{uuid.uuid4().hex[:6]}"
    code = tmp_path_factory.mktemp("model") / "secret_digest.py"
    code.write_text(MODEL_CODE)
    mlflow.set_tracking_uri(mlflow_url)
    mlflow.set_experiment(f"test-vault-{name}")
    data = pd.DataFrame({"x": [1.0]})
    with pytest.MonkeyPatch.context() as patch, mlflow.start_run():
        # Logging runs the model code, which reads the variable.
        patch.setenv(ENV, "at-logging")
        mlflow.pyfunc.log_model(
            name="model",
            python_model=str(code),
            signature=infer_signature(data),
            registered_model_name=name,
            pip_requirements=[f"mlflow=={mlflow.__version__}"],
        )
    yield name
    MlflowClient(mlflow_url, mlflow_url).delete_registered_model(name)


def deployment(name: str, model: str, path: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": f"models:/{model}/1"},
            "replicas": {"min": 1, "max": 1},
            "autoscaling": {"enabled": False},
            "secrets": [{"vaultPath": path, "key": "token", "env": ENV}],
        },
    }


def serving_pods(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    return items(cluster, namespace, "pods", f"mlops.maestro.dev/deployment={name}")


def ready_pod(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    for pod in serving_pods(cluster, namespace, name):
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        if conditions.get("Ready") == "True" and not pod["metadata"].get("deletionTimestamp"):
            return pod
    return None


def answer(pod: dict[str, Any]) -> int:
    url = f"http://{pod['status']['podIP']}:8080/invocations"
    response = httpx.post(url, json={"dataframe_records": [{"x": 1.0}]}, timeout=10)
    response.raise_for_status()
    return int(response.json()["predictions"][0])


def available(cluster: Cluster, namespace: str, name: str, timeout: float = 180) -> None:
    wait_status(
        cluster,
        namespace,
        name,
        f"{name} Available",
        lambda s: s.get("phase") == "Available" and s.get("readyReplicas", 0) >= 1,
        timeout=timeout,
    )


def reason(cluster: Cluster, namespace: str, name: str, expected: str) -> dict[str, Any]:
    def check(status: dict[str, Any]) -> bool:
        return any(
            c["type"] == "Ready" and c["status"] == "False" and c["reason"] == expected
            for c in status.get("conditions") or []
        )

    return wait_status(cluster, namespace, name, f"{name} Ready=False {expected}", check)


def pod_token(cfg: ClusterConfig, pod: dict[str, Any]) -> str:
    """The pod's own projected ServiceAccount token, as its Vault Agent reads it."""
    return (cfg.pods / pod_workdir(pod["metadata"]) / "volumes/vault-token/token").read_text()


def test_each_deployment_reads_its_own_secret_follows_rotation_and_outlives_vault_restarts(
    deployed_operator: ClusterConfig,
    cluster: Cluster,
    namespace: str,
    vault: LocalVault,
    root: hvac.Client,
    digest_model: str,
    mlflow_url: str,
) -> None:
    path_a = f"secret/data/maestro/{namespace}/a"
    path_b = f"secret/data/maestro/{namespace}/b"
    first, rotated = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    write_kv(root, path_a, {"token": first})
    write_kv(root, path_b, {"token": secrets.token_urlsafe(24)})
    apply(
        cluster,
        namespace,
        deployment("a", digest_model, path_a),
        deployment("b", digest_model, path_b),
    )
    available(cluster, namespace, "a")
    available(cluster, namespace, "b")

    # The process of a's pod holds the value stored in Vault.
    pod_a = ready_pod(cluster, namespace, "a")
    assert pod_a is not None
    assert answer(pod_a) == digest(first)
    spec = pod_a["spec"]
    assert spec["serviceAccountName"] == "a-serving"
    assert [c["name"] for c in spec["initContainers"]] == ["vault-agent-init"]
    assert [c["name"] for c in spec["containers"]] == ["server", "vault-agent"]

    # b's pod, logging in with its own token and role, is refused a's path by Vault.
    pod_b = ready_pod(cluster, namespace, "b")
    assert pod_b is not None
    as_b = hvac.Client(url=vault.address)
    as_b.auth.kubernetes.login(
        f"maestro-serving-{namespace}.b", pod_token(deployed_operator, pod_b)
    )
    assert read_kv(as_b, path_b)["token"]
    with pytest.raises(VaultDenied, match="permission denied"):
        read_kv(as_b, path_a)
    # Nor may a's token log in as b.
    with pytest.raises(hvac.exceptions.VaultError):
        hvac.Client(url=vault.address).auth.kubernetes.login(
            f"maestro-serving-{namespace}.b", pod_token(deployed_operator, pod_a)
        )

    # A new KV version reaches the running process (the sidecar renders every 5 s here).
    write_kv(root, path_a, {"token": rotated})
    eventually(
        lambda: answer(pod_a) == digest(rotated),
        timeout=60,
        what="the rotated secret in a's running server",
    )

    # Vault down: the deployment says so, and a pod started meanwhile waits in its init
    # container instead of serving without its secret.
    stop_server(deployed_operator)
    try:
        cluster.kubectl("delete", "pod", pod_a["metadata"]["name"], "-n", namespace, "--wait=false")
        obj = reason(cluster, namespace, "a", "VaultUnavailable")
        assert vault.address in ready(obj)["message"]
        pending = [
            p
            for p in serving_pods(cluster, namespace, "a")
            if not p["metadata"].get("deletionTimestamp")
        ]
        assert pending and all(p["status"]["phase"] == "Pending" for p in pending)
    finally:
        # Back, unsealed by the platform; nothing else is done by hand.
        start_server(vault)
    available(cluster, namespace, "a", timeout=240)
    pod_a = ready_pod(cluster, namespace, "a")
    assert pod_a is not None
    assert answer(pod_a) == digest(rotated)

    # The values are nowhere: operator and pod logs, Events, status, MLflow.
    leaks = places_holding(deployed_operator, cluster, namespace, mlflow_url, digest_model)
    looked = {" ".join(where.split(" ")[:2]) for where in leaks}
    assert {"operator log", "pod log", "mlflow run"} <= looked, sorted(leaks)
    assert any("vault-agent" in where for where in leaks), sorted(leaks)
    for value in (first, rotated):
        assert [where for where, text in leaks.items() if value in text] == []


def places_holding(
    cfg: ClusterConfig, cluster: Cluster, namespace: str, mlflow_url: str, model: str
) -> dict[str, str]:
    """Everything a secret could leak into: where -> its text."""
    texts = {f"operator log {pod}": log for pod, log in platform.operator_logs(cfg).items()}
    for log in cfg.pods.glob(f"{namespace}_*/*.log"):
        texts[f"pod log {log.parent.name}/{log.name}"] = log.read_text(errors="replace")
    for name in ("vault", "vault-injector", "pod-runner"):
        texts[f"{name} log"] = cfg.processes().log(name).read_text(errors="replace")
    texts["events"] = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    texts["modeldeployments"] = cluster.kubectl(
        "get", "modeldeployments,deployments,pods", "-n", namespace, "-o", "json"
    ).stdout
    client = MlflowClient(mlflow_url, mlflow_url)
    for version in client.search_model_versions(f"name='{model}'"):
        run = client.get_run(str(version.run_id))
        texts[f"mlflow run {run.info.run_id}"] = json.dumps(
            {"params": run.data.params, "tags": run.data.tags}
        )
    return texts


def test_secrets_vault_cannot_give_are_reasons_not_crash_loops(
    deployed_operator: ClusterConfig,
    cluster: Cluster,
    namespace: str,
    root: hvac.Client,
    digest_model: str,
) -> None:
    outside = "secret/data/elsewhere/x"
    nowhere = f"secret/data/maestro/{namespace}/not-yet"
    apply(
        cluster,
        namespace,
        deployment("outside", digest_model, outside),
        deployment("later", digest_model, nowhere),
    )
    message = ready(reason(cluster, namespace, "outside", "SecretPathNotAllowed"))["message"]
    assert outside in message and "secret/data/maestro/" in message
    message = ready(reason(cluster, namespace, "later", "SecretNotFound"))["message"]
    assert nowhere in message
    # Nothing was started that could crash-loop.
    assert items(cluster, namespace, "deployments", "app.kubernetes.io/name=maestro-serving") == []

    # Written, the secret is found on the operator's next look; no one touches the object.
    write_kv(root, nowhere, {"token": secrets.token_urlsafe(16)})
    available(cluster, namespace, "later")
    assert get(cluster, namespace, "serviceaccount", "later-serving") is not None
