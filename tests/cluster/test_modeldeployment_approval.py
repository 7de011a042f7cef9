"""spec.model.requireApproval: an alias moved directly in MLflow is not rolled out; the
ModelDeployment says AwaitingApproval (and a Warning Event says it once) while the stable
revision serves, until `maestro model promote` records the approval."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from maestro.governance.audit_chain import Action
from maestro.governance.audit_log import AuditLog
from maestro.localplatform.platform import local_operator_env
from tests.cluster.modeldeployments import ALIAS, API_VERSION, wait_status
from tests.cluster.objects import apply, ready
from tests.cluster.operator_process import MAESTRO, Operator
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

POLICY = """\
apiVersion: mlops.maestro.dev/v1alpha1
kind: PromotionPolicy
metadata: {name: signature-only, version: "1"}
spec:
  gates: [{type: signature}]
"""


def guarded(name: str, uri: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": uri, "name": "cancer", "requireApproval": True},
            "replicas": {"min": 1, "max": 1},
            "strategy": {"type": "Rolling"},
        },
    }


def test_an_alias_moved_in_mlflow_waits_for_maestro_model_promote(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    mlflow_url: str,
    registered: tuple[str, Any],
    audit_db: str,
    tmp_path: Path,
) -> None:
    model, _ = registered
    start_operator(
        env=local_operator_env(
            MAESTRO_MLFLOW_TRACKING_URI=mlflow_url, MAESTRO_AUDIT_DATABASE_URL=audit_db
        )
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_url,
        "MAESTRO_AUDIT_DATABASE_URL": audit_db,
        "KUBECONFIG": str(cluster.kubeconfig),
    }

    def promote(version: str) -> None:
        proc = subprocess.run(
            [str(MAESTRO), "model", "promote", model, "--alias", ALIAS, "--version", version,
             "--reason", f"test approves v{version}", "--policy", str(policy)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr

    promote("1")  # the alias already points at v1: this approves it
    apply(cluster, namespace, guarded("md", f"models:/{model}@{ALIAS}"))
    wait_status(cluster, namespace, "md", "Available", lambda s: s.get("phase") == "Available", 180)

    MlflowClient(mlflow_url, mlflow_url).set_registered_model_alias(model, ALIAS, "2")
    obj = wait_status(
        cluster,
        namespace,
        "md",
        "AwaitingApproval",
        lambda s: any(c.get("reason") == "AwaitingApproval" for c in s.get("conditions") or []),
        timeout=30,
    )
    message = ready(obj)["message"]
    assert f"{model}@{ALIAS} was moved to v2 without an approval" in message, message
    assert f"maestro model promote {model} --alias {ALIAS} --version 2" in message
    time.sleep(3 * 2.0)  # a few registry polls later, still nothing rolls out
    status = wait_status(cluster, namespace, "md", "v1 serving", lambda s: True, 5)["status"]
    assert status["stableModelUri"] == f"models:/{model}/1" and not status.get("canaryRevision")
    events = json.loads(
        cluster.kubectl(
            "get", "events", "-n", namespace, "--field-selector", "reason=AwaitingApproval",
            "-o", "json",
        ).stdout
    )["items"]  # fmt: skip
    said = [(e["type"], e.get("count", 1), e["message"], e.get("eventTime")) for e in events]
    assert [s[:2] for s in said] == [("Warning", 1)], said

    approved = time.monotonic()
    promote("2")
    wait_status(
        cluster,
        namespace,
        "md",
        "v2 serving",
        lambda s: s.get("stableModelUri") == f"models:/{model}/2",
        timeout=120,
    )
    print(f"v2 serves {time.monotonic() - approved:.1f} s after maestro model promote")
    # The lineage of v2 names the deployment that serves it now.
    proc = subprocess.run(
        [str(MAESTRO), "lineage", model, "--version", "2", "--format", "json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    deployments = json.loads(proc.stdout)["deployments"]
    assert deployments["known"], deployments
    assert [(s["namespace"], s["deployment"], s["role"]) for s in deployments["serving"]] == [
        (namespace, "md", "stable")
    ]
    # Archiving keeps what the alias and the deployment use, whatever --keep says.
    proc = subprocess.run(
        [str(MAESTRO), "model", "archive", model, "--keep", "0", "--json"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    archived = json.loads(proc.stdout)
    assert archived["archived"] == ["1", "3"], archived
    assert archived["kept"] == {"2": ["an alias", f"modeldeployment {namespace}/md"]}, archived
    tags = MlflowClient(mlflow_url, mlflow_url).get_model_version(model, "1").tags
    assert tags.get("maestro.archived") == "true"
    approval = AuditLog(audit_db).entries(action=Action.APPROVAL)[-1]
    # The approver is the kubeconfig's user, as the API server authenticated it.
    assert approval.actor["source"] == "kubernetes" and approval.details["version"] == "2"
