"""ModelDeployments end to end on the local platform.

The operator is deployed from manifests/overlays/local; the pod runner runs the serving
pods (`maestro serve`) as processes on their pod IPs; the models come from MLflow's
registry on PostgreSQL; Debian's Prometheus scrapes the serving processes and the canary
analysis reads it. No Istio data plane runs here, so the test plays the mesh: it sends
requests straight to the pods of every revision, as a weighted route would.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import mlflow
import pytest
from mlflow import MlflowClient

from maestro.localplatform.cluster import ClusterConfig
from maestro.localplatform.wait import eventually
from tests.cluster.modeldeployments import ALIAS, API_VERSION, Mesh, wait_status
from tests.cluster.objects import apply, events, items, ready
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

OWNED = (
    "deployments,services,horizontalpodautoscalers,poddisruptionbudgets,networkpolicies,"
    "servicemonitors,prometheusrules"
)


def model_deployment(name: str, model: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": f"models:/{model}@{ALIAS}", "name": "cancer"},
            "replicas": {"min": 1, "max": 2},
            "strategy": {
                "type": "Canary",
                "canary": {
                    "steps": [50, 100],
                    "stepDuration": "8s",
                    "analysis": {
                        # Two or more 1 s scrapes in every window, even on a busy machine.
                        "interval": "5s",
                        "maxErrorRate": 0.05,
                        "maxLatencyP95Ms": 2000,
                        "minRequests": 5,
                        "maxFailedChecks": 2,
                    },
                },
            },
        },
    }


def test_canary_promotes_a_good_version_and_rolls_back_a_broken_one(
    deployed_operator: ClusterConfig,
    cluster: Cluster,
    namespace: str,
    registered: tuple[str, Any],
    mlflow_url: str,
    prometheus_url: str,
) -> None:
    model, features = registered
    client = MlflowClient(mlflow_url, mlflow_url)
    apply(cluster, namespace, model_deployment("cancer", model))

    # The first version is deployed directly and answers through its pod.
    obj = wait_status(
        cluster,
        namespace,
        "cancer",
        "cancer Available on v1",
        lambda s: s.get("phase") == "Available" and s.get("readyReplicas", 0) >= 1,
        timeout=120,
    )
    status = obj["status"]
    assert status["stableRevision"] == "v1"
    assert status["stableModelUri"] == f"models:/{model}/1"
    assert status["url"].startswith("http://cancer.")
    assert ready(obj)["status"] == "True"

    # Settled, a reconcile writes nothing: the registry polls (every 2 s here) and the
    # Deployments' events leave every object as it was. HPAs are left out: the HPA
    # controller writes their status.
    def versions() -> dict[str, str]:
        kinds = OWNED.replace("horizontalpodautoscalers,", "") + ",modeldeployments"
        found = json.loads(cluster.kubectl("get", kinds, "-n", namespace, "-o", "json").stdout)
        return {
            f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
            for o in found["items"]
        }

    def unchanged_for_6s() -> bool | None:
        before = versions()
        time.sleep(6)  # three registry polls, each a full reconcile
        return versions() == before or None

    # Controllers finish their own status writes (Deployment, PDB) first; an operator that
    # wrote on every reconcile would never let this hold.
    eventually(unchanged_for_6s, timeout=60, what="no object written for 6 s", interval=0)

    rows = features.head(4).to_numpy().tolist()
    body = {"dataframe_split": {"columns": list(features.columns), "data": rows}}
    with Mesh(cluster, namespace, "cancer", body) as mesh:
        ((revision, url),) = mesh.pods()
        assert revision == "v1"
        answer = httpx.post(f"{url}/invocations", json=body)
        assert answer.status_code == 200, answer.text
        expected = mlflow.sklearn.load_model(f"models:/{model}/1").predict(features.head(4))
        assert answer.json()["predictions"] == expected.tolist()

        # Moving the alias to a good version runs the canary, which passes and promotes.
        client.set_registered_model_alias(model, ALIAS, "2")
        wait_status(
            cluster,
            namespace,
            "cancer",
            "a canary of v2",
            lambda s: s.get("canaryRevision") == "v2" and s.get("phase") == "Progressing",
            mesh=mesh,
        )
        obj = wait_status(
            cluster,
            namespace,
            "cancer",
            "v2 promoted to stable",
            lambda s: s.get("stableRevision") == "v2" and s.get("phase") == "Available",
            timeout=120,
            mesh=mesh,
        )
        analysis = obj["status"]["lastAnalysis"]
        assert analysis["passed"] is True
        assert analysis["errorRate"] == 0
        assert analysis["requests"] >= 5
        assert "canaryRevision" not in obj["status"]
        assert mesh.codes.get("v2") and set(mesh.codes["v2"]) == {200}

        # A version that fails every prediction is rolled back by the analysis.
        client.set_registered_model_alias(model, ALIAS, "3")
        obj = wait_status(
            cluster,
            namespace,
            "cancer",
            "v3 rolled back",
            lambda s: s.get("phase") == "RolledBack",
            timeout=120,
            mesh=mesh,
        )
    status = obj["status"]
    assert status["stableRevision"] == "v2"
    assert status["lastAnalysis"]["passed"] is False
    assert status["lastAnalysis"]["errorRate"] > 0.05
    condition = ready(obj)
    assert condition["reason"] == "AnalysisFailed", condition
    assert "v3" in condition["message"]
    assert 500 in mesh.codes.get("v3", [])
    reasons = {reason for _, reason, _ in events(cluster, namespace, "cancer")}
    assert {"AnalysisFailed"} <= reasons, reasons
    # The broken revision's objects are gone; the stable one keeps serving.
    deployments = items(cluster, namespace, "deployments", "mlops.maestro.dev/deployment=cancer")
    assert [d["metadata"]["labels"]["mlops.maestro.dev/revision"] for d in deployments] == ["v2"]

    # Deleting the ModelDeployment removes every object it owns.
    cluster.kubectl("delete", "modeldeployment", "cancer", "-n", namespace)

    def gone() -> bool:
        left = cluster.kubectl("get", OWNED, "-n", namespace, "-o", "json").stdout
        return not json.loads(left)["items"]

    eventually(gone, timeout=60, what="every owned object deleted", interval=1)
