"""BlueGreen and Shadow rollouts end to end on the local platform.

A namespace-scoped operator process runs with the settings of manifests/overlays/local
(no Istio: the `<md>` Service selects the one revision that has all the traffic), so a
blue/green switch is seen for real in the Service's EndpointSlices and by calling the pod IPs
they list. The pod runner runs the serving pods; MLflow's registry on PostgreSQL holds the
models; Debian's Prometheus scrapes the serving processes, and the operator reads the shadow
figures from it. No Istio mirror runs here: the test sends the mirrored requests to the
shadow pods itself, as the mesh would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from maestro.localplatform.platform import local_operator_env
from maestro.localplatform.wait import eventually
from tests.cluster.modeldeployments import ALIAS, API_VERSION, wait_status
from tests.cluster.objects import apply, get, items, ready
from tests.cluster.operator_process import Operator
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

PROMOTE = "mlops.maestro.dev/promote"
SCALE_DOWN_DELAY = 20  # seconds: long enough to look around after the switch, short for CI


@pytest.fixture
def operator(
    start_operator: Callable[..., Operator],
    mlflow_url: str,
    prometheus_url: str,
) -> Operator:
    """The operator serving only the test namespace, set up as the local overlay sets up
    the in-cluster one (serving pods run by the pod runner, no Istio, registry polled every
    2 s, the local Prometheus)."""
    return start_operator(
        env=local_operator_env(
            MAESTRO_MLFLOW_TRACKING_URI=mlflow_url, MAESTRO_PROMETHEUS_URL=prometheus_url
        )
    )


def model_deployment(name: str, model: str, strategy: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": f"models:/{model}@{ALIAS}", "name": "cancer"},
            "replicas": {"min": 1, "max": 2},
            "strategy": strategy,
        },
    }


def roles(cluster: Cluster, namespace: str, name: str) -> dict[str, str]:
    """Revision -> role of the ModelDeployment's Deployments."""
    found = items(cluster, namespace, "deployments", f"mlops.maestro.dev/deployment={name}")
    return {
        d["metadata"]["labels"]["mlops.maestro.dev/revision"]: d["metadata"]["labels"][
            "mlops.maestro.dev/role"
        ]
        for d in found
    }


def pod_ips(cluster: Cluster, namespace: str, name: str, revision: str) -> set[str]:
    """Addresses of the revision's ready serving pods."""
    selector = f"mlops.maestro.dev/deployment={name},mlops.maestro.dev/revision={revision}"
    found = set()
    for pod in items(cluster, namespace, "pods", selector):
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        if conditions.get("Ready") == "True" and pod["status"].get("podIP"):
            found.add(pod["status"]["podIP"])
    return found


def endpoints(cluster: Cluster, namespace: str, service: str) -> set[str]:
    """Ready addresses behind a Service, as the EndpointSlice controller lists them."""
    slices = items(cluster, namespace, "endpointslices", f"kubernetes.io/service-name={service}")
    return {
        address
        for s in slices
        for endpoint in s.get("endpoints") or []
        if (endpoint.get("conditions") or {}).get("ready")
        for address in endpoint["addresses"]
    }


def wait_endpoints(
    cluster: Cluster, namespace: str, service: str, expected: set[str], what: str
) -> None:
    seen: list[set[str]] = [set()]

    def probe() -> bool:
        seen[0] = endpoints(cluster, namespace, service)
        return seen[0] == expected

    eventually(probe, timeout=30, what=what, why=lambda: f"endpoints: {seen[0]}", interval=0.5)


def infer(ip: str, rows: list[list[float]]) -> dict[str, Any]:
    """An Open Inference Protocol v2 request to one pod; its answer names the version."""
    body = {
        "inputs": [
            {"name": "input", "shape": [len(rows), len(rows[0])], "datatype": "FP64", "data": rows}
        ]
    }
    answer = httpx.post(f"http://{ip}:8080/v2/models/cancer/infer", json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def predictions(answer: dict[str, Any]) -> list[Any]:
    (output,) = answer["outputs"]
    return list(output["data"])


def ready_reason(status: dict[str, Any]) -> str | None:
    for condition in status.get("conditions") or []:
        if condition["type"] == "Ready":
            return str(condition["reason"])
    return None


def reasons(cluster: Cluster, namespace: str, name: str) -> dict[str, list[str]]:
    """Messages of the ModelDeployment's Events by reason (not those of its `<md>` Service,
    which has the same name); a good rollout has no Warning."""
    out = cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.kind=ModelDeployment,involvedObject.name={name}",
        "-o",
        "json",
    ).stdout
    found: dict[str, list[str]] = {}
    warnings = []
    for event in json.loads(out)["items"]:
        reason, message = event["reason"], event.get("message", "")
        found.setdefault(reason, []).append(message)
        if event["type"] == "Warning":
            warnings.append(f"{reason}: {message}")
    assert not warnings, warnings
    return found


def deployment_uid(cluster: Cluster, namespace: str, name: str) -> str:
    obj = get(cluster, namespace, "deployment", name)
    assert obj is not None, f"deployment {name} is gone"
    return str(obj["metadata"]["uid"])


def test_blue_green_switches_the_service_on_approval_and_back_within_the_delay(
    operator: Operator,
    cluster: Cluster,
    namespace: str,
    registered: tuple[str, Any],
    mlflow_url: str,
) -> None:
    model, features = registered
    client = MlflowClient(mlflow_url, mlflow_url)
    client.set_registered_model_alias(model, ALIAS, "1")
    rows = features.head(8).to_numpy().tolist()
    expected = {
        version: mlflow.sklearn.load_model(f"models:/{model}/{version}").predict(features.head(8))
        for version in ("1", "2")
    }
    strategy = {
        "type": "BlueGreen",
        "blueGreen": {"autoPromote": False, "scaleDownDelay": f"{SCALE_DOWN_DELAY}s"},
    }
    apply(cluster, namespace, model_deployment("bg", model, strategy))

    wait_status(
        cluster,
        namespace,
        "bg",
        "bg Available on v1",
        lambda s: s.get("phase") == "Available" and s.get("readyReplicas", 0) >= 1,
        timeout=120,
    )
    blue = pod_ips(cluster, namespace, "bg", "v1")
    assert blue, "no ready v1 pod"
    wait_endpoints(cluster, namespace, "bg", blue, "the Service selecting v1's pods")
    for ip in endpoints(cluster, namespace, "bg"):
        answer = infer(ip, rows)
        assert answer["model_version"] == "1"
        assert predictions(answer) == expected["1"].tolist()

    # A new version comes up beside the stable one and waits for approval, unserved.
    client.set_registered_model_alias(model, ALIAS, "2")
    obj = wait_status(
        cluster,
        namespace,
        "bg",
        "v2 awaiting promotion",
        lambda s: s.get("canaryRevision") == "v2" and ready_reason(s) == "AwaitingPromotion",
        timeout=120,
    )
    status = obj["status"]
    assert status["phase"] == "Progressing"
    assert status["stableRevision"] == "v1"
    assert status["readyReplicas"] == 1  # v1's: the ready preview serves nothing yet
    assert status["canaryModelUri"] == f"models:/{model}/2"
    condition = ready(obj)
    assert condition["status"] == "Unknown"
    assert f"{PROMOTE}=v2" in condition["message"], condition
    assert roles(cluster, namespace, "bg") == {"v1": "stable", "v2": "preview"}
    green = pod_ips(cluster, namespace, "bg", "v2")
    assert green and not green & blue
    assert endpoints(cluster, namespace, "bg") == blue
    # The preview answers on its own pods (what a preview is for) with the new version.
    (preview,) = green
    assert infer(preview, rows)["model_version"] == "2"
    blue_uid = deployment_uid(cluster, namespace, "bg-v1")

    # Approval switches the Service to v2 at once; v1 is kept for scaleDownDelay.
    cluster.kubectl("annotate", "modeldeployment", "bg", "-n", namespace, f"{PROMOTE}=v2")
    obj = wait_status(
        cluster,
        namespace,
        "bg",
        "v2 promoted",
        lambda s: s.get("stableRevision") == "v2" and s.get("phase") == "Available",
        timeout=30,
    )
    status = obj["status"]
    assert "canaryRevision" not in status
    assert status["previousRevision"] == "v1"
    assert status["previousModelUri"] == f"models:/{model}/1"
    assert status["readyReplicas"] == 1  # v2's: the kept v1 serves nothing
    assert ready(obj)["status"] == "True"
    promoted_at = datetime.fromisoformat(ready(obj)["lastTransitionTime"])
    scale_down_at = datetime.fromisoformat(status["scaleDownAt"])
    assert (scale_down_at - promoted_at).total_seconds() == pytest.approx(SCALE_DOWN_DELAY, abs=2)
    wait_endpoints(cluster, namespace, "bg", green, "the Service switched to v2's pods")
    for ip in endpoints(cluster, namespace, "bg"):
        answer = infer(ip, rows)
        assert answer["model_version"] == "2"
        assert predictions(answer) == expected["2"].tolist()
    assert roles(cluster, namespace, "bg") == {"v2": "stable", "v1": "previous"}
    assert pod_ips(cluster, namespace, "bg", "v1") == blue

    # Pointing the model back within the delay switches back to the kept pods, unchanged.
    client.set_registered_model_alias(model, ALIAS, "1")
    obj = wait_status(
        cluster,
        namespace,
        "bg",
        "switched back to v1",
        lambda s: s.get("stableRevision") == "v1" and s.get("previousRevision") == "v2",
        timeout=30,
    )
    assert datetime.now(scale_down_at.tzinfo) < scale_down_at, "v1 was kept too short to test"
    assert obj["status"]["phase"] == "Available"
    assert deployment_uid(cluster, namespace, "bg-v1") == blue_uid
    wait_endpoints(cluster, namespace, "bg", blue, "the Service switched back to v1's pods")
    for ip in endpoints(cluster, namespace, "bg"):
        assert infer(ip, rows)["model_version"] == "1"
    assert roles(cluster, namespace, "bg") == {"v1": "stable", "v2": "previous"}

    # v2 is now the one kept; it goes once scaleDownDelay has passed since the switch back.
    scale_down_at = datetime.fromisoformat(obj["status"]["scaleDownAt"])
    obj = wait_status(
        cluster,
        namespace,
        "bg",
        "v2 removed after scaleDownDelay",
        lambda s: "previousRevision" not in s,
        timeout=SCALE_DOWN_DELAY + 30,
    )
    assert datetime.now(scale_down_at.tzinfo) >= scale_down_at
    assert "scaleDownAt" not in obj["status"]
    assert obj["status"]["stableRevision"] == "v1"
    eventually(
        lambda: roles(cluster, namespace, "bg") == {"v1": "stable"},
        timeout=15,
        what="only v1's Deployment left",
    )
    assert endpoints(cluster, namespace, "bg") == blue

    found = reasons(cluster, namespace, "bg")
    assert {"RolloutStarted", "AwaitingPromotion", "Promoted", "PreviousRevisionRemoved"} <= set(
        found
    ), found
    assert any(m.startswith("Rolling out v2 ") for m in found["RolloutStarted"]), found
    promoted = found["Promoted"]
    assert any(m.startswith(f"v2 (models:/{model}/2) now serves") for m in promoted), promoted
    assert any(m.startswith(f"v1 (models:/{model}/1) now serves") for m in promoted), promoted
    assert any(m.startswith("Removed v2: scaleDownDelay") for m in found["PreviousRevisionRemoved"])


def shadow_counters(ip: str) -> dict[str, float]:
    """The shadow counters of one serving pod, read from its /metrics."""
    text = httpx.get(f"http://{ip}:8080/metrics", timeout=5).text
    wanted = {"maestro_shadow_requests", "maestro_shadow_agreements"}
    return {
        family.name: sum(s.value for s in family.samples if s.name.endswith("_total"))
        for family in text_string_to_metric_families(text)
        if family.name in wanted
    }


def scraped(prometheus_url: str, namespace: str, name: str, revision: str) -> bool:
    query = (
        f'maestro_shadow_requests_total{{namespace="{namespace}",deployment="{name}",'
        f'revision="{revision}"}}'
    )
    answer = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": query}, timeout=5)
    return bool(answer.json()["data"]["result"])


def test_shadow_reports_agreement_and_latency_delta_while_the_stable_serves(
    operator: Operator,
    cluster: Cluster,
    namespace: str,
    registered: tuple[str, Any],
    mlflow_url: str,
    prometheus_url: str,
) -> None:
    model, features = registered
    client = MlflowClient(mlflow_url, mlflow_url)
    client.set_registered_model_alias(model, ALIAS, "1")
    strategy = {"type": "Shadow", "shadow": {"percent": 50}}
    apply(cluster, namespace, model_deployment("sh", model, strategy))
    wait_status(
        cluster,
        namespace,
        "sh",
        "sh Available on v1",
        lambda s: s.get("phase") == "Available" and s.get("readyReplicas", 0) >= 1,
        timeout=120,
    )

    client.set_registered_model_alias(model, ALIAS, "2")
    obj = wait_status(
        cluster,
        namespace,
        "sh",
        "v2 shadowing",
        lambda s: s.get("canaryRevision") == "v2" and ready_reason(s) == "Shadowing",
        timeout=120,
    )
    assert obj["status"]["phase"] == "Available"
    assert obj["status"]["stableRevision"] == "v1"
    assert obj["status"]["readyReplicas"] == 1  # v1's: the shadow pod serves nothing
    assert roles(cluster, namespace, "sh") == {"v1": "stable", "v2": "shadow"}
    shadow_deployment = get(cluster, namespace, "deployment", "sh-v2")
    assert shadow_deployment is not None
    (container,) = shadow_deployment["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--model-uri") + 1] == f"models:/{model}/1"
    assert args[args.index("--shadow-model-uri") + 1] == f"models:/{model}/2"
    stable = pod_ips(cluster, namespace, "sh", "v1")
    shadow = pod_ips(cluster, namespace, "sh", "v2")
    assert stable and len(shadow) == 1  # 50% of the stable's one replica, rounded up
    # The stable revision keeps all of the Service's traffic.
    wait_endpoints(cluster, namespace, "sh", stable, "the Service selecting only v1's pods")

    # Rows on which the two versions agree, plus every row on which they do not: one
    # request each, so the expected agreement rate is known exactly.
    v1, v2 = (
        mlflow.sklearn.load_model(f"models:/{model}/{version}").predict(features)
        for version in ("1", "2")
    )
    differ = np.flatnonzero(v1 != v2)
    assert 0 < len(differ) < 20, "the fixture's versions should disagree on a few rows"
    chosen = [*np.flatnonzero(v1 == v2)[:30], *differ]
    agreeing = sum(bool(v1[i] == v2[i]) for i in chosen)

    # Requests counted before Prometheus first sees the series would be outside any
    # rate(): wait for the first scrape of the (zero) shadow counters.
    (ip,) = shadow
    eventually(
        lambda: scraped(prometheus_url, namespace, "sh", "v2"),
        timeout=30,
        what="Prometheus scraping the shadow pod",
        interval=0.5,
    )
    # Play Istio's mirror: the shadow pods answer with the stable model (the answers are
    # discarded by the mesh) and compare the candidate's answer behind the response.
    rows = features.to_numpy()
    for i in chosen:
        answer = infer(ip, [rows[i].tolist()])
        assert answer["model_version"] == "1"
        assert predictions(answer) == [v1[i]]
    counted = eventually(
        lambda: (c := shadow_counters(ip)).get("maestro_shadow_requests") == len(chosen) and c,
        timeout=15,
        what="every mirrored request compared",
    )
    assert counted["maestro_shadow_agreements"] == agreeing

    expected = agreeing / len(chosen)
    obj = wait_status(
        cluster,
        namespace,
        "sh",
        f"status.shadow with agreement {expected}",
        lambda s: (
            (s.get("shadow") or {}).get("agreementRate") == pytest.approx(expected)
            and s["shadow"].get("latencyDeltaMs") is not None
            and s["shadow"].get("requests", 0) >= len(chosen)
        ),
        # The p95 delta needs two scrapes of the histogram after the requests; on a loaded
        # machine (the whole suite) that took over 30 s once.
        timeout=60,
    )
    figures = obj["status"]["shadow"]
    assert 0 < figures["agreementRate"] < 1
    # Both models are small pipelines: the shadow answers within a second of the stable.
    assert abs(figures["latencyDeltaMs"]) < 1000, figures
    condition = ready(obj)
    assert condition["status"] == "True"
    assert f"agreement {expected * 100:.2f}%" in condition["message"], condition
    assert obj["status"]["stableRevision"] == "v1"
    assert endpoints(cluster, namespace, "sh") == stable

    found = reasons(cluster, namespace, "sh")
    assert any(m.startswith("Rolling out v2 ") for m in found.get("RolloutStarted", [])), found
    assert any("50% mirror of v1" in m for m in found.get("Shadowing", [])), found
    # Nothing was promoted: the shadow only evaluates.
    assert "Promoted" not in found, found


def test_a_first_revision_that_never_gets_ready_fails_at_its_progress_deadline(
    cluster: Cluster, namespace: str, operator: Operator
) -> None:
    """A pod that is never ready without saying why (it asks for more CPU than any node
    has, so it is never scheduled; a model that cannot load says so at once, see
    test_modeldeployment_models.py). Past progressDeadline the ModelDeployment says so
    (Failed, ProgressDeadlineExceeded, a Warning Event) and keeps the Deployment, which may
    still come up."""
    name, deadline = "stuck", 15
    apply(
        cluster,
        namespace,
        {
            "apiVersion": API_VERSION,
            "kind": "ModelDeployment",
            "metadata": {"name": name},
            "spec": {
                "model": {"uri": "file:///models/not-there", "name": "cancer"},
                "replicas": {"min": 1, "max": 1},
                "resources": {"requests": {"cpu": "1000"}},
                "progressDeadline": f"{deadline}s",
            },
        },
    )
    progressing = wait_status(
        cluster, namespace, name, "phase Progressing", lambda s: s.get("phase") == "Progressing"
    )
    failed = wait_status(
        cluster,
        namespace,
        name,
        f"phase Failed after progressDeadline {deadline}s",
        lambda s: s.get("phase") == "Failed",
        timeout=deadline + 45,
    )
    condition = ready(failed)
    assert (condition["status"], condition["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert "0 of 1 replicas ready" in condition["message"], condition["message"]
    assert f"progressDeadline {deadline}s" in condition["message"], condition["message"]
    started = datetime.fromisoformat(ready(progressing)["lastTransitionTime"])
    failed_at = datetime.fromisoformat(condition["lastTransitionTime"])
    assert (failed_at - started).total_seconds() >= deadline - 1  # 1 s timestamp resolution
    # Nothing to fall back to: the Deployment stays, in case the model becomes loadable.
    assert get(cluster, namespace, "deployment", f"{name}-{failed['status']['stableRevision']}")
    warnings = cluster.kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        f"involvedObject.kind=ModelDeployment,involvedObject.name={name},type=Warning",
        "-o",
        "jsonpath={.items[*].reason}",
    ).stdout.split()
    assert "ProgressDeadlineExceeded" in warnings, warnings
