"""The operator deployed from the manifests, run by the pod runner as its
ServiceAccount: it works with exactly the RBAC manifests/base grants, and that RBAC
grants nothing beyond what it uses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Cluster
from tests.harness import platform
from tests.harness.cluster import ClusterConfig

pytestmark = pytest.mark.cluster

SA = f"system:serviceaccount:{platform.OPERATOR_NAMESPACE}:{platform.OPERATOR_SERVICE_ACCOUNT}"


@pytest.fixture(scope="module")
def deployed_operator(cluster: Cluster) -> Iterator[ClusterConfig]:
    cfg = ClusterConfig()
    platform.deploy_operator(cfg)
    try:
        yield cfg
    finally:
        platform.remove_operator(cfg)


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
    assert "403" not in log and "Forbidden" not in log, log


@pytest.mark.parametrize(
    ("verb", "resource", "allowed"),
    [
        ("watch", "modeldeployments.mlops.maestro.dev", True),
        ("patch", "abtests.mlops.maestro.dev/status", True),
        ("create", "events", True),
        ("patch", "clusterkopfpeerings.kopf.dev", True),
        ("delete", "modeldeployments.mlops.maestro.dev", False),
        ("create", "trainingruns.mlops.maestro.dev", False),
        ("get", "secrets", False),
        ("create", "deployments.apps", False),
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
