"""The e2e tier runs on any cluster. With --kubeconfig (`make e2e KUBECONFIG=...`) the cluster
is that one and a Maestro operator must already run in it (`make kind-up` deploys one);
without it (`make test`), the local control plane, with the operator of
manifests/overlays/local deployed for the module as the `deployed_operator` fixture does."""

from __future__ import annotations

import pytest

from tests.conftest import Cluster

OPERATOR_SELECTOR = "app.kubernetes.io/name=maestro,app.kubernetes.io/component=operator"


@pytest.fixture(scope="module")
def running_operator(request: pytest.FixtureRequest, cluster: Cluster) -> None:
    """An operator reconciling every namespace of the cluster under test."""
    if not request.config.getoption("--kubeconfig"):
        request.getfixturevalue("deployed_operator")
        return
    found = cluster.kubectl(
        "get", "deployments", "-A", "-l", OPERATOR_SELECTOR, "-o", "name", check=False
    )
    # Without the right to list Deployments the tests still run, and say what they wait for.
    if found.returncode == 0 and not found.stdout.strip():
        pytest.fail(
            f"no Maestro operator in the cluster of --kubeconfig (no Deployment labelled "
            f"{OPERATOR_SELECTOR}): deploy one first, e.g. with `make kind-up`",
            pytrace=False,
        )
