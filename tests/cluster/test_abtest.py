"""ABTests end to end on the local platform: the operator deployed from
manifests/overlays/local runs the challenger beside the champion, the champion's serving
pods split the traffic and forward the challenger's share to its Service (the pod runner
stands in for kube-proxy), every pod exports the per-variant outcome statistics Prometheus
scrapes, and the operator decides with them.

The test plays the users: it sends predictions to the champion's pods (where a mesh would
route the deployment's traffic), draws each answer's outcome from the true rate of the
variant that answered (a known lift), and reports it later through /feedback on a pod of
the other variant than the one that answered.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from mlflow import MlflowClient

from maestro.localplatform.cluster import ClusterConfig
from maestro.localplatform.wait import eventually
from tests.cluster.abtests import Users, abtest, model_deployment
from tests.cluster.modeldeployments import wait_status
from tests.cluster.objects import apply, events, get, items, ready
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster


@pytest.fixture
def setup(
    deployed_operator: ClusterConfig,
    cluster: Cluster,
    namespace: str,
    registered: tuple[str, Any],
    mlflow_url: str,
    prometheus_url: str,
) -> Iterator[tuple[str, str, list[dict[str, Any]], MlflowClient]]:
    """A ModelDeployment `md` Available on version 1 through an alias of this test's own."""
    model, features = registered
    client = MlflowClient(mlflow_url, mlflow_url)
    alias = f"champ-{uuid.uuid4().hex[:6]}"
    client.set_registered_model_alias(model, alias, "1")
    apply(cluster, namespace, model_deployment("md", model, alias))
    wait_status(
        cluster,
        namespace,
        "md",
        "md Available on v1",
        lambda s: s.get("phase") == "Available" and s.get("stableRevision") == "v1",
        timeout=120,
    )
    rows = features.head(40).to_dict(orient="records")
    yield model, alias, rows, client
    client.delete_registered_model_alias(model, alias)


def wait_abtest(
    cluster: Cluster,
    namespace: str,
    name: str,
    what: str,
    check: Any,
    timeout: float,
    users: Users | None = None,
) -> dict[str, Any]:
    seen: list[Any] = [None]

    def probe() -> dict[str, Any] | None:
        obj = get(cluster, namespace, "abtest", name)
        seen[0] = (obj or {}).get("status")
        return obj if obj and check(obj.get("status") or {}) else None

    def why() -> str:
        return f"status: {seen[0]}\n{users.summary() if users else ''}"

    return eventually(probe, timeout=timeout, what=what, why=why)


def test_a_challenger_with_a_real_lift_is_promoted_and_rolled_out(
    cluster: Cluster, namespace: str, setup: tuple[str, str, list[dict[str, Any]], MlflowClient]
) -> None:
    model, alias, rows, client = setup
    apply(cluster, namespace, abtest("lift", "md", f"models:/{model}/2"))
    wait_abtest(cluster, namespace, "lift", "Running", lambda s: s.get("phase") == "Running", 60)
    # Refused while it runs, nothing split: a second test, and a challenger not registered.
    apply(
        cluster,
        namespace,
        abtest("second", "md", f"models:/{model}/2"),
        abtest("nosuch", "md", f"models:/{model}/99"),
    )
    for name, reason in (("second", "AnotherTestRunning"), ("nosuch", "ModelNotFound")):
        obj = wait_abtest(
            cluster,
            namespace,
            name,
            reason,
            lambda s, r=reason: any(c["reason"] == r for c in s.get("conditions") or []),
            60,
        )
        assert obj["status"]["phase"] == "Pending" and "challengerModelUri" not in obj["status"]
    cluster.kubectl("delete", "abtest", "second", "nosuch", "-n", namespace)
    rates = {"champion": 0.3, "challenger": 0.6}
    with Users(cluster, namespace, "md", rows, rates) as users:
        obj = wait_abtest(
            cluster,
            namespace,
            "lift",
            "a decision",
            lambda s: s.get("phase") == "Concluded",
            timeout=240,
            users=users,
        )
    status = obj["status"]
    assert status["decision"] == "PromoteChallenger", (status, users.summary())
    assert status["lift"] > 0 and status["pValue"] < 0.05
    assert status["champion"]["samples"] > 0 and status["challenger"]["samples"] > 0
    assert status["confidenceInterval"]["lower"] > 0
    # Both variants answered through the champion's pods; feedback reached the other pods.
    assert users.answers.get("champion 200") and users.answers.get("challenger 200")
    assert users.feedback_codes and set(users.feedback_codes) == {200}
    # The alias moved, and the deployment rolls the challenger out with its own strategy.
    assert client.get_model_version_by_alias(model, alias).version == "2"
    wait_status(
        cluster,
        namespace,
        "md",
        "md Available on v2",
        lambda s: s.get("phase") == "Available" and s.get("stableRevision") == "v2",
        timeout=120,
    )
    # The challenger's own revision is gone with the test's end.
    eventually(
        lambda: not items(cluster, namespace, "deployments", "mlops.maestro.dev/role=challenger"),
        timeout=60,
        what="the challenger's Deployment removed",
    )
    seen = {(kind, reason) for kind, reason, _ in events(cluster, namespace, "lift")}
    assert ("Normal", "ChallengerWins") in seen


def test_no_true_lift_is_not_promoted(
    cluster: Cluster, namespace: str, setup: tuple[str, str, list[dict[str, Any]], MlflowClient]
) -> None:
    model, alias, rows, client = setup
    apply(cluster, namespace, abtest("same", "md", f"models:/{model}/2", maxDuration="45s"))
    rates = {"champion": 0.5, "challenger": 0.5}
    with Users(cluster, namespace, "md", rows, rates, seed=11):
        obj = wait_abtest(
            cluster,
            namespace,
            "same",
            "a decision",
            lambda s: s.get("phase") == "Concluded",
            timeout=180,
        )
    assert obj["status"]["decision"] in ("Inconclusive", "KeepChampion"), obj["status"]
    assert client.get_model_version_by_alias(model, alias).version == "1"


def test_a_broken_challenger_trips_the_guardrail(
    cluster: Cluster, namespace: str, setup: tuple[str, str, list[dict[str, Any]], MlflowClient]
) -> None:
    model, alias, rows, client = setup
    # Version 3 loads but fails every prediction.
    apply(cluster, namespace, abtest("broken", "md", f"models:/{model}/3"))
    with Users(cluster, namespace, "md", rows, {"champion": 0.5, "challenger": 0.5}) as users:
        obj = wait_abtest(
            cluster,
            namespace,
            "broken",
            "the guardrail",
            lambda s: s.get("phase") == "Concluded",
            timeout=180,
        )
    status = obj["status"]
    assert status["decision"] == "KeepChampion", (status, users.summary())
    assert ready(obj)["reason"] == "GuardrailBreached"
    assert "error rate" in status["decisionReason"]
    assert client.get_model_version_by_alias(model, alias).version == "1"


def test_a_skewed_split_is_caught_by_the_sample_ratio_check(
    cluster: Cluster, namespace: str, setup: tuple[str, str, list[dict[str, Any]], MlflowClient]
) -> None:
    model, _, rows, _ = setup
    apply(cluster, namespace, abtest("skewed", "md", f"models:/{model}/2"))
    # Half of the challenger's outcomes are lost on the way: the arms no longer match the
    # configured 50/50 split.
    share = {"champion": 1.0, "challenger": 0.5}
    with Users(cluster, namespace, "md", rows, {"champion": 0.3, "challenger": 0.3}, share):
        obj = wait_abtest(
            cluster,
            namespace,
            "skewed",
            "a sample ratio mismatch",
            lambda s: any(
                c["type"] == "Ready" and c["reason"] == "SampleRatioMismatch"
                for c in s.get("conditions") or []
            ),
            timeout=180,
        )
    assert obj["status"]["phase"] == "Running"
    assert obj["status"].get("decision") is None
    assert obj["status"]["srmPValue"] < 0.001
