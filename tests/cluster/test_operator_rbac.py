"""The operator deployed from the manifests, run by the pod runner as its
ServiceAccount: it works with exactly the RBAC manifests/base grants, and that RBAC
grants nothing beyond what it uses."""

from __future__ import annotations

import json

import pytest

from maestro.localplatform import platform
from maestro.localplatform.cluster import ClusterConfig
from maestro.localplatform.wait import eventually
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

SA = f"system:serviceaccount:{platform.OPERATOR_NAMESPACE}:{platform.OPERATOR_SERVICE_ACCOUNT}"


def test_every_example_gets_conditions_within_10s(
    deployed_operator: ClusterConfig, namespace: str
) -> None:
    applied = platform.apply_examples(deployed_operator, namespace)
    assert {a["kind"] for a in applied} == {
        "TrainingRun",
        "ModelDeployment",
        "ABTest",
        "DriftCheck",
    }
    objects = platform.wait_for_conditions(deployed_operator, namespace, timeout=10)
    for key, obj in objects.items():
        status = obj["status"]
        assert status["observedGeneration"] == obj["metadata"]["generation"], key
        ready = [c for c in status["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["reason"], key
    log = platform.operator_log(deployed_operator, lines=10_000)
    # An RBAC denial reads 'X is forbidden: User "system:serviceaccount:..." cannot ...'.
    assert "forbidden: User" not in log, log


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("watch", "modeldeployments.mlops.maestro.dev", True),
        ("patch", "abtests.mlops.maestro.dev/status", True),
        ("create", "events", True),
        ("patch", "clusterkopfpeerings.kopf.dev", True),
        ("delete", "modeldeployments.mlops.maestro.dev", False),
        # A DriftCheck's retrains are TrainingRuns the operator creates (and owns) ...
        ("create", "trainingruns.mlops.maestro.dev", True),
        # ... but it never deletes a TrainingRun, nor writes any other custom resource.
        ("delete", "trainingruns.mlops.maestro.dev", False),
        ("create", "modeldeployments.mlops.maestro.dev", False),
        ("get", "secrets", False),
        ("list", "secrets", False),
        ("create", "secrets", True),
        ("create", "jobs.batch", True),
        ("delete", "jobs.batch", False),
        ("patch", "pytorchjobs.kubeflow.org", True),
        ("watch", "xgboostjobs.kubeflow.org", True),
        ("list", "pods", True),
        ("create", "deployments.apps", True),
        ("patch", "virtualservices.networking.istio.io", True),
        ("delete", "virtualservices.networking.istio.io", False),
        ("patch", "modeldeployments.mlops.maestro.dev", False),
        ("get", "deployments.apps", False),
        ("get", "services", False),
        ("delete", "pods", False),
        ("create", "configmaps", False),
        ("create", "pods", False),
        ("update", "customresourcedefinitions.apiextensions.k8s.io", False),
    ],
    ids=lambda v: str(v),
)
def test_operator_service_account_holds_only_what_it_uses(
    deployed_operator: ClusterConfig, cluster: Cluster, verb: str, resource: str, allowed: bool
) -> None:
    resource, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, resource, "--as", SA, "-n", "default"]
    if sub:
        args += ["--subresource", sub]
    answer = cluster.kubectl(*args, check=False).stdout.strip()
    assert answer == ("yes" if allowed else "no")


def test_two_replicas_elect_one_active_through_peering(
    deployed_operator: ClusterConfig, cluster: Cluster, namespace: str
) -> None:
    """As in the production overlay: two replicas, one ClusterKopfPeering, one active."""
    cluster.kubectl(
        "scale", "deployment/maestro-operator", "-n", platform.OPERATOR_NAMESPACE, "--replicas=2"
    )
    try:
        cluster.kubectl(
            "rollout",
            "status",
            "deployment/maestro-operator",
            "-n",
            platform.OPERATOR_NAMESPACE,
            "--timeout=60s",
        )

        def peers() -> dict[str, object]:
            out = cluster.kubectl("get", "clusterkopfpeering", "maestro", "-o", "json").stdout
            return dict(json.loads(out).get("status") or {})

        def two_peers() -> dict[str, object] | None:
            found = peers()
            return found if len(found) >= 2 else None

        found = eventually(two_peers, timeout=30, what="two peers in the ClusterKopfPeering")
        priorities = [p["priority"] for p in found.values()]  # type: ignore[index]
        assert len(set(priorities)) == len(priorities), found

        # Kopf pauses every replica but the one with the highest priority; only that
        # one handles the new resources.
        active = max(found, key=lambda pod: found[pod]["priority"])  # type: ignore[index]
        before = {pod: len(log) for pod, log in platform.operator_logs(deployed_operator).items()}
        platform.apply_examples(deployed_operator, namespace)
        platform.wait_for_conditions(deployed_operator, namespace, timeout=10)
        handled = [
            pod
            for pod, log in platform.operator_logs(deployed_operator).items()
            if f"[{namespace}/" in log[before.get(pod, 0) :]
        ]
        assert handled == [active], platform.operator_log(deployed_operator)
    finally:
        cluster.kubectl(
            "scale",
            "deployment/maestro-operator",
            "-n",
            platform.OPERATOR_NAMESPACE,
            "--replicas=1",
        )
