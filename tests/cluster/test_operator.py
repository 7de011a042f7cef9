"""The real operator process against the local control plane.

`maestro operator --standalone --namespace <test namespace>` runs as a subprocess, so
tests running at the same time in other namespaces never see each other's operator.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import yaml

from tests.harness.wait import eventually

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "manifests" / "examples"
MAESTRO = Path(sys.executable).parent / "maestro"
API_VERSION = "mlops.maestro.dev/v1alpha1"
T = TypeVar("T")


class Cluster(Protocol):
    kubeconfig: Path

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


@dataclass
class Operator:
    process: subprocess.Popen[bytes]
    log: Path
    healthz: str

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 10.0) -> T:
    return eventually(probe, timeout=timeout, what=what, interval=0.2)


@pytest.fixture
def start_operator(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> Iterator[Callable[..., Operator]]:
    """Start (and always stop) operator processes serving only the test namespace."""
    # An in-cluster operator watches every namespace, this one too: these tests would
    # measure two operators at once.
    running = cluster.kubectl(
        "get", "pods", "-A", "-l", "app.kubernetes.io/component=operator", "-o", "name"
    ).stdout.split()
    assert not running, f"an in-cluster operator is still running: {running}"
    started: list[Operator] = []

    def start(*peering: str, env: Mapping[str, str] | None = None) -> Operator:
        """`peering`: e.g. ("--peering", name); standalone when empty. `env`: extra
        environment (MAESTRO_* settings)."""
        port = free_port()
        healthz = f"http://127.0.0.1:{port}/healthz"
        log = tmp_path / f"operator-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    str(MAESTRO),
                    "operator",
                    *(peering or ("--standalone",)),
                    "--namespace",
                    namespace,
                    "--liveness",
                    healthz,
                    "--verbose",
                ],
                env={**os.environ, **(env or {}), "KUBECONFIG": str(cluster.kubeconfig)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        operator = Operator(process, log, healthz)
        started.append(operator)

        def healthy() -> bool:
            assert process.poll() is None, f"operator exited:\n{operator.logs()}"
            try:
                with urllib.request.urlopen(healthz, timeout=1) as rsp:
                    return bool(rsp.status == 200)
            except OSError:
                return False

        wait_for("the operator's liveness endpoint", healthy, timeout=30)
        return operator

    try:
        yield start
    finally:
        for operator in started:
            stop(operator)


def stop(operator: Operator) -> None:
    if operator.process.poll() is None:
        operator.process.terminate()
        try:
            operator.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            operator.process.kill()
            operator.process.wait()


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


# What each example settles at under an operator started without MLflow: every kind is
# accepted, and a TrainingRun waits for the MLflow tracking URI it needs to start
# (tests/cluster/test_trainingrun.py runs them against the real services).
SETTLED = {
    "TrainingRun": ("False", "OperatorNotConfigured", "Warning"),
    # Both need MLflow, which this operator is not given.
    "ModelDeployment": ("False", "OperatorNotConfigured", "Warning"),
    "ABTest": ("True", "Accepted", "Normal"),
    "DriftCheck": ("True", "Accepted", "Normal"),
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
    accepted = wait_ready(cluster, namespace, "ABTest", name, "True", "Accepted")

    assert accepted["metadata"]["generation"] == waiting["metadata"]["generation"]
    assert accepted["spec"] == waiting["spec"]
    wait_for(
        "an Accepted Event after the deployment appeared",
        lambda: ("Normal", "Accepted") in events(cluster, namespace, name),
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
    wait_ready(cluster, namespace, "DriftCheck", name, "True", "Accepted")


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

    def accepted_events() -> int:
        return sum(1 for e in events(cluster, namespace, "iris") if e[1] == "Accepted")

    time.sleep(2)  # let any in-flight write land before the baseline
    before, events_before = versions(), accepted_events()
    stop(first)
    second = start_operator()
    time.sleep(5)

    assert versions() == before, second.logs()
    assert accepted_events() == events_before
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
