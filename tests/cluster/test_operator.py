"""The real operator process against the local control plane.

`maestro operator --standalone --namespace <test namespace>` runs as a subprocess (the
`start_operator` fixture, tests/cluster/conftest.py), so tests running at the same time in
other namespaces never see each other's operator.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import yaml

from maestro.localplatform.wait import eventually
from tests.cluster.operator_process import Operator, stop

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
API_VERSION = "mlops.maestro.dev/v1alpha1"
T = TypeVar("T")


class Cluster(Protocol):
    kubeconfig: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 10.0) -> T:
    return eventually(probe, timeout=timeout, what=what, interval=0.2)


def get(cluster: Cluster, namespace: str, kind: str, name: str) -> dict[str, Any]:
    out = cluster.kubectl("get", kind.lower(), name, "-n", namespace, "-o", "json").stdout
    obj: dict[str, Any] = json.loads(out)
    return obj


def ready(obj: dict[str, Any]) -> dict[str, Any] | None:
    for condition in obj.get("status", {}).get("conditions", []):
        if condition["type"] == "Ready":
            return dict(condition)
    return None


def wait_ready(
    cluster: Cluster, namespace: str, kind: str, name: str, status: str, reason: str
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(cluster, namespace, kind, name)
        condition = ready(obj)
        if condition and (condition["status"], condition["reason"]) == (status, reason):
            return obj
        return None

    return wait_for(f"{kind}/{name} Ready={status} {reason}", probe)


def events(cluster: Cluster, namespace: str, name: str) -> list[tuple[str, str]]:
    out = cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    return [
        (e["type"], e["reason"])
        for e in json.loads(out)["items"]
        if e["involvedObject"]["name"] == name
    ]


def apply(cluster: Cluster, namespace: str, obj: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(obj))


# What each example settles at under an operator started without MLflow: a TrainingRun and
# a ModelDeployment and an ABTest wait for the MLflow tracking URI they need (other modules run
# them against the real services); DriftCheck resolves its references but has no object
# store to read the prediction log from.
SETTLED = {
    "TrainingRun": ("False", "OperatorNotConfigured", "Warning"),
    # Both need MLflow, which this operator is not given.
    "ModelDeployment": ("False", "OperatorNotConfigured", "Warning"),
    "ABTest": ("False", "OperatorNotConfigured", "Warning"),
    "DriftCheck": ("False", "ObjectStoreNotConfigured", "Warning"),
}


def example(kind: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{kind.lower()}.yaml").read_text())
    return doc


def test_examples_become_ready_with_events(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    operator = start_operator()
    cluster.kubectl("apply", "-n", namespace, "-k", str(EXAMPLES))

    for kind, (ready_status, reason, event_type) in SETTLED.items():
        name = example(kind)["metadata"]["name"]
        obj = wait_ready(cluster, namespace, kind, name, ready_status, reason)
        status = obj["status"]
        assert status["observedGeneration"] == obj["metadata"]["generation"]
        assert status["phase"] == "Pending"
        assert ready(obj)["observedGeneration"] == obj["metadata"]["generation"]  # type: ignore[index]
        wait_for(
            f"an {reason} Event for {kind}/{name}",
            lambda name=name, expected=(event_type, reason): (
                expected in events(cluster, namespace, name)
            ),
        )
    assert operator.process.poll() is None, operator.logs()


def test_abtest_waits_for_its_deployment_without_touching_spec(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    start_operator()
    abtest = example("ABTest")
    apply(cluster, namespace, abtest)
    name = abtest["metadata"]["name"]

    waiting = wait_ready(cluster, namespace, "ABTest", name, "False", "DeploymentNotFound")
    assert waiting["status"]["phase"] == "Pending"
    assert "iris" in ready(waiting)["message"]  # type: ignore[index]
    wait_for(
        "a DeploymentNotFound warning Event",
        lambda: ("Warning", "DeploymentNotFound") in events(cluster, namespace, name),
    )

    apply(cluster, namespace, example("ModelDeployment"))
    resolved = wait_ready(cluster, namespace, "ABTest", name, "False", "OperatorNotConfigured")
    assert "MAESTRO_MLFLOW_TRACKING_URI" in ready(resolved)["message"]  # type: ignore[index]

    assert resolved["metadata"]["generation"] == waiting["metadata"]["generation"]
    assert resolved["spec"] == waiting["spec"]
    wait_for(
        "an OperatorNotConfigured Event after the deployment appeared",
        lambda: ("Warning", "OperatorNotConfigured") in events(cluster, namespace, name),
    )

    cluster.kubectl("delete", "modeldeployment", "iris", "-n", namespace)
    wait_ready(cluster, namespace, "ABTest", name, "False", "DeploymentNotFound")


def test_abtest_challenger_must_differ_from_champion(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    start_operator()
    deployment = example("ModelDeployment")
    apply(cluster, namespace, deployment)
    abtest = example("ABTest")
    abtest["spec"]["challenger"]["model"]["uri"] = deployment["spec"]["model"]["uri"]
    apply(cluster, namespace, abtest)

    wait_ready(
        cluster,
        namespace,
        "ABTest",
        abtest["metadata"]["name"],
        "False",
        "ChallengerSameAsChampion",
    )


def test_driftcheck_waits_for_its_retrain_template(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    start_operator()
    apply(cluster, namespace, example("ModelDeployment"))
    check = example("DriftCheck")
    check["spec"]["onDrift"] = {"retrain": {"template": "iris-train"}}
    apply(cluster, namespace, check)
    name = check["metadata"]["name"]

    wait_ready(cluster, namespace, "DriftCheck", name, "False", "TrainingRunNotFound")
    apply(cluster, namespace, example("TrainingRun"))
    wait_ready(cluster, namespace, "DriftCheck", name, "False", "ObjectStoreNotConfigured")


def test_settled_objects_are_not_rewritten_even_after_a_restart(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    first = start_operator()
    cluster.kubectl("apply", "-n", namespace, "-k", str(EXAMPLES))
    kinds = ("TrainingRun", "ModelDeployment", "ABTest", "DriftCheck")
    for kind in kinds:
        ready_status, reason, _ = SETTLED[kind]
        wait_ready(
            cluster, namespace, kind, example(kind)["metadata"]["name"], ready_status, reason
        )

    def versions() -> dict[str, str]:
        return {
            kind: get(cluster, namespace, kind, example(kind)["metadata"]["name"])["metadata"][
                "resourceVersion"
            ]
            for kind in kinds
        }

    def ready_events() -> int:
        # The Events of each example's Ready transition: a restart must not repeat them.
        return sum(
            1
            for kind in kinds
            for e in events(cluster, namespace, example(kind)["metadata"]["name"])
            if e[1] == SETTLED[kind][1]
        )

    time.sleep(2)  # let any in-flight write land before the baseline
    before, events_before = versions(), ready_events()
    assert events_before >= len(kinds)
    stop(first)
    second = start_operator()
    time.sleep(5)

    assert versions() == before, second.logs()
    assert ready_events() == events_before
    annotations = get(cluster, namespace, "ABTest", "iris-candidate")["metadata"].get(
        "annotations", {}
    )
    assert not [a for a in annotations if "kopf" in a or "maestro" in a], annotations
    finalizers = get(cluster, namespace, "ABTest", "iris-candidate")["metadata"].get(
        "finalizers", []
    )
    assert finalizers == []


def test_replicas_coordinate_through_the_cluster_peering(
    cluster: Cluster, namespace: str, start_operator: Callable[..., Operator]
) -> None:
    peering = f"maestro-{namespace}"
    peering_object = {
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": peering},
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(peering_object))
    try:
        start_operator("--peering", peering)

        def keepalives() -> dict[str, Any]:
            obj = json.loads(
                cluster.kubectl("get", "clusterkopfpeering", peering, "-o", "json").stdout
            )
            status: dict[str, Any] = obj.get("status") or {}
            return status

        wait_for("the operator's keep-alive in the ClusterKopfPeering", keepalives, timeout=20)
        apply(cluster, namespace, example("TrainingRun"))
        wait_ready(cluster, namespace, "TrainingRun", "iris-train", *SETTLED["TrainingRun"][:2])
    finally:
        cluster.kubectl("delete", "clusterkopfpeering", peering, "--wait=false", check=False)
