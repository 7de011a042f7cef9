"""The local control plane is real: TLS, RBAC, controllers, kwok nodes, and the pod
runner that really runs the project's own pods."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest

from maestro.localplatform.cluster import ClusterConfig
from maestro.localplatform.wait import eventually
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

LOCAL = {"maestro.dev/local-run": "true"}


@pytest.fixture
def namespace(plain_namespace: str) -> str:
    """These tests run plain test workloads on the platform: no Pod Security enforcement."""
    return plain_namespace


def get(cluster: Cluster, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def apply(cluster: Cluster, namespace: str, obj: dict[str, Any]) -> None:
    obj.setdefault("metadata", {})["namespace"] = namespace
    cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))


def test_two_kwok_nodes_are_ready(cluster: Cluster) -> None:
    nodes = get(cluster, "nodes")["items"]
    ready = [
        n["metadata"]["name"]
        for n in nodes
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    ]
    assert len(ready) >= 2, ready


def millicores(quantity: str) -> int:
    return int(quantity[:-1]) if quantity.endswith("m") else int(float(quantity) * 1000)


def test_nodes_advertise_the_capacity_the_cluster_config_gives_them(cluster: Cluster) -> None:
    cfg = ClusterConfig()
    expected = {"cpu": cfg.node_cpu, "memory": cfg.node_memory, "pods": cfg.node_pods}
    for node in get(cluster, "nodes")["items"]:
        status = node["status"]
        assert {k: status["capacity"][k] for k in expected} == expected, node["metadata"]["name"]
        assert {k: status["allocatable"][k] for k in expected} == expected


def test_a_pod_asking_for_more_cpu_than_any_node_has_stays_pending(
    cluster: Cluster, namespace: str
) -> None:
    nodes = get(cluster, "nodes")["items"]
    largest = max(millicores(n["status"]["allocatable"]["cpu"]) for n in nodes)
    apply(
        cluster,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "too-big"},
            "spec": {
                "containers": [
                    {
                        "name": "c",
                        "image": "nginx",
                        "resources": {"requests": {"cpu": f"{largest + 1000}m"}},
                    }
                ]
            },
        },
    )

    def unschedulable() -> dict[str, Any] | None:
        pod = get(cluster, "pod", "too-big", "-n", namespace)
        conditions = (pod.get("status") or {}).get("conditions") or []
        return next(
            (
                c
                for c in conditions
                if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable"
            ),
            None,
        )

    condition = eventually(unschedulable, what="PodScheduled=False (Unschedulable)")
    assert condition["status"] == "False"
    assert "Insufficient cpu" in condition["message"], condition["message"]

    def failed_scheduling() -> list[dict[str, Any]]:
        events = get(
            cluster, "events", "-n", namespace, "--field-selector", "involvedObject.name=too-big"
        )["items"]
        return [e for e in events if e["reason"] == "FailedScheduling"]

    (event, *_) = eventually(failed_scheduling, what="a FailedScheduling Event")
    assert "Insufficient cpu" in event["message"], event
    pod = get(cluster, "pod", "too-big", "-n", namespace)
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")


def test_api_server_enforces_tls_client_auth_and_rbac(cluster: Cluster, namespace: str) -> None:
    # Anonymous requests over TLS reach the server but are refused for resources.
    ca = ClusterConfig().state / "pki" / "ca.crt"
    import ssl

    ctx = ssl.create_default_context(cafile=str(ca))
    server = ClusterConfig().server
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{server}/api/v1/namespaces/{namespace}/secrets", context=ctx)
    assert err.value.code in (401, 403)
    # A fresh ServiceAccount holds no rights until RBAC grants them.
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    sa = f"system:serviceaccount:{namespace}:nobody"
    denied = cluster.kubectl(
        "auth", "can-i", "list", "secrets", "-n", namespace, "--as", sa, check=False
    )
    assert denied.stdout.strip() == "no"
    cluster.kubectl(
        "create", "role", "reader", "--verb=list", "--resource=secrets", "-n", namespace
    )
    cluster.kubectl(
        "create",
        "rolebinding",
        "reader",
        "--role=reader",
        f"--serviceaccount={namespace}:nobody",
        "-n",
        namespace,
    )
    allowed = cluster.kubectl(
        "auth", "can-i", "list", "secrets", "-n", namespace, "--as", sa, check=False
    )
    assert allowed.stdout.strip() == "yes"


def test_deployment_replicaset_and_garbage_collection(cluster: Cluster, namespace: str) -> None:
    apply(
        cluster,
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
                },
            },
        },
    )
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=60s")
    pods = get(cluster, "pods", "-n", namespace, "-l", "app=web")["items"]
    assert len(pods) == 2 and all(p["status"]["phase"] == "Running" for p in pods)
    cluster.kubectl("delete", "deployment", "web", "-n", namespace, "--cascade=background")
    eventually(
        lambda: not get(cluster, "replicasets,pods", "-n", namespace, "-l", "app=web")["items"],
        what="garbage collection of the ReplicaSet and its pods",
    )


def test_hpa_controller_reconciles(cluster: Cluster, namespace: str) -> None:
    apply(
        cluster,
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "scaled"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "scaled"}},
                "template": {
                    "metadata": {"labels": {"app": "scaled"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "c",
                                "image": "nginx",
                                "resources": {"requests": {"cpu": "100m"}},
                            }
                        ]
                    },
                },
            },
        },
    )
    apply(
        cluster,
        namespace,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "scaled"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "scaled"},
                "minReplicas": 2,
                "maxReplicas": 3,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    }
                ],
            },
        },
    )
    # No metrics server runs, yet the controller must act: it enforces minReplicas.
    eventually(
        lambda: get(cluster, "deployment", "scaled", "-n", namespace)["spec"]["replicas"] == 2,
        timeout=45,
        what="HPA raising the Deployment to minReplicas",
    )
    conditions = eventually(
        lambda: get(cluster, "hpa", "scaled", "-n", namespace).get("status", {}).get("conditions"),
        what="HPA conditions",
    )
    assert {c["type"] for c in conditions} >= {"AbleToScale"}


def test_cronjob_controller_is_running(cluster: Cluster) -> None:
    log = (ClusterConfig().root / "logs" / "kube-controller-manager.log").read_text()
    for controller in (
        "cronjob",
        "job",
        "deployment",
        "replicaset",
        "garbage-collector",
        "horizontal-pod-autoscaler",
    ):
        assert f'controller="{controller}-controller"' in log or f'"{controller}' in log, controller


def job(name: str, command: list[str], **pod_spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": dict(LOCAL)},
                "spec": {
                    "restartPolicy": "Never",
                    **pod_spec,
                    "containers": [
                        {
                            "name": "main",
                            "image": "ghcr.io/maestro-ml/maestro:0.1.0",
                            "command": command,
                            "env": [
                                {
                                    "name": "POD_NAME",
                                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                                },
                                {"name": "GREETING", "value": "hello $(POD_NAME)"},
                                {
                                    "name": "POD_IP",
                                    "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                                },
                            ],
                        }
                    ],
                },
            },
        },
    }


def test_pod_runner_completes_a_job_through_the_job_controller(
    cluster: Cluster, namespace: str
) -> None:
    script = (
        "import os, pathlib; "
        "assert os.environ['GREETING'] == 'hello ' + os.environ['POD_NAME']; "
        "print('POD_IP=' + os.environ['POD_IP']); "
        "pathlib.Path('done').write_text(os.environ['POD_NAME'])"
    )
    apply(cluster, namespace, job("ok", ["python", "-c", script]))
    cluster.kubectl("wait", "--for=condition=Complete", "job/ok", "-n", namespace, "--timeout=60s")
    pod = get(cluster, "pods", "-n", namespace, "-l", "job-name=ok")["items"][0]
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert pod["status"]["podIP"].startswith("10.244.")
    # The address a container reads through fieldRef is the one it got (the operator's
    # liveness endpoint binds to it): never empty, even when the pod changed meanwhile.
    log = ClusterConfig().pod_log(pod, "main").read_text()
    assert f"POD_IP={pod['status']['podIP']}\n" in log


def test_pod_runner_reports_a_failing_exit_code(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, job("bad", ["python", "-c", "raise SystemExit(3)"]))
    cluster.kubectl("wait", "--for=condition=Failed", "job/bad", "-n", namespace, "--timeout=60s")
    pod = get(cluster, "pods", "-n", namespace, "-l", "job-name=bad")["items"][0]
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_pod_runner_authenticates_as_the_pods_service_account(
    cluster: Cluster, namespace: str
) -> None:
    cluster.kubectl("create", "serviceaccount", "lister", "-n", namespace)
    cluster.kubectl(
        "create", "role", "lister", "--verb=list", "--resource=configmaps", "-n", namespace
    )
    cluster.kubectl(
        "create",
        "rolebinding",
        "lister",
        "--role=lister",
        f"--serviceaccount={namespace}:lister",
        "-n",
        namespace,
    )
    script = (
        "from kubernetes import client, config\n"
        "from kubernetes.client.rest import ApiException\n"
        "config.load_config()\n"
        "v1 = client.CoreV1Api()\n"
        f"v1.list_namespaced_config_map({namespace!r})\n"
        "try:\n"
        f"    v1.list_namespaced_secret({namespace!r})\n"
        "except ApiException as e:\n"
        "    raise SystemExit(0 if e.status == 403 else 1)\n"
        "raise SystemExit(2)\n"
    )
    apply(cluster, namespace, job("sa", ["python", "-c", script], serviceAccountName="lister"))
    cluster.kubectl("wait", "--for=condition=Complete", "job/sa", "-n", namespace, "--timeout=60s")


def test_pod_runner_serves_readiness_and_endpoints(cluster: Cluster, namespace: str) -> None:
    server = (
        "import http.server, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = os.environ['HOSTNAME'].encode()\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(body)\n"
        "http.server.HTTPServer((os.environ['MAESTRO_BIND_HOST'], 8080), H).serve_forever()\n"
    )
    apply(
        cluster,
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "echo"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "echo"}},
                "template": {
                    "metadata": {"labels": {"app": "echo", **LOCAL}},
                    "spec": {
                        "containers": [
                            {
                                "name": "echo",
                                "image": "ghcr.io/maestro-ml/maestro:0.1.0",
                                "command": ["python", "-c", server],
                                "ports": [{"name": "http", "containerPort": 8080}],
                                "readinessProbe": {
                                    "httpGet": {"path": "/", "port": "http"},
                                    "periodSeconds": 1,
                                },
                            }
                        ]
                    },
                },
            },
        },
    )
    apply(
        cluster,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "echo"},
            "spec": {"selector": {"app": "echo"}, "ports": [{"port": 80, "targetPort": "http"}]},
        },
    )
    cluster.kubectl("rollout", "status", "deployment/echo", "-n", namespace, "--timeout=60s")
    pods = get(cluster, "pods", "-n", namespace, "-l", "app=echo")["items"]
    ips = sorted(p["status"]["podIP"] for p in pods)
    assert len(set(ips)) == 2

    def endpoint_ips() -> list[str]:
        slices = get(
            cluster, "endpointslices", "-n", namespace, "-l", "kubernetes.io/service-name=echo"
        )
        return sorted(
            a
            for s in slices["items"]
            for e in s.get("endpoints") or []
            if (e.get("conditions") or {}).get("ready")
            for a in e["addresses"]
        )

    assert eventually(lambda: endpoint_ips() == ips and ips, what="ready endpoints") == ips
    for pod in pods:
        with urllib.request.urlopen(f"http://{pod['status']['podIP']}:8080/", timeout=5) as resp:
            assert resp.read().decode() == pod["metadata"]["name"]
    # Deleting a pod stops its process; the ReplicaSet replaces it.
    victim = pods[0]
    cluster.kubectl("delete", "pod", victim["metadata"]["name"], "-n", namespace, "--timeout=30s")
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{victim['status']['podIP']}:8080/", timeout=2)
    cluster.kubectl("rollout", "status", "deployment/echo", "-n", namespace, "--timeout=60s")


@pytest.mark.parametrize(
    "obj",
    [
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "PyTorchJob",
            "metadata": {"name": "p"},
            "spec": {
                "pytorchReplicaSpecs": {
                    "Master": {
                        "replicas": 1,
                        "template": {"spec": {"containers": [{"name": "pytorch", "image": "x"}]}},
                    }
                }
            },
        },
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "TFJob",
            "metadata": {"name": "t"},
            "spec": {
                "tfReplicaSpecs": {
                    "Worker": {
                        "replicas": 2,
                        "template": {
                            "spec": {"containers": [{"name": "tensorflow", "image": "x"}]}
                        },
                    }
                }
            },
        },
        {
            "apiVersion": "kubeflow.org/v1",
            "kind": "XGBoostJob",
            "metadata": {"name": "x"},
            "spec": {
                "xgbReplicaSpecs": {
                    "Master": {
                        "replicas": 1,
                        "template": {"spec": {"containers": [{"name": "xgboost", "image": "x"}]}},
                    }
                }
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "v"},
            "spec": {
                "hosts": ["m"],
                "http": [
                    {
                        "route": [
                            {"destination": {"host": "m", "subset": "stable"}, "weight": 90},
                            {"destination": {"host": "m", "subset": "canary"}, "weight": 10},
                        ]
                    }
                ],
            },
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "DestinationRule",
            "metadata": {"name": "d"},
            "spec": {"host": "m", "subsets": [{"name": "stable", "labels": {"rev": "1"}}]},
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": "r"},
            "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0"}]}]},
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "s"},
            "spec": {"selector": {"matchLabels": {"app": "m"}}, "endpoints": [{"port": "http"}]},
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PodMonitor",
            "metadata": {"name": "pm"},
            "spec": {
                "selector": {"matchLabels": {"app": "m"}},
                "podMetricsEndpoints": [{"port": "http"}],
            },
        },
    ],
    ids=lambda o: o["kind"],
)
def test_upstream_crds_are_served(cluster: Cluster, namespace: str, obj: dict[str, Any]) -> None:
    """The real upstream CRDs validate what the operators will create."""
    obj["metadata"]["namespace"] = namespace
    cluster.kubectl(
        "apply", "--dry-run=server", "--validate=strict", "-f", "-", input=json.dumps(obj)
    )
    broken = json.loads(json.dumps(obj))
    broken["spec"]["notAField"] = True
    rejected = cluster.kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        input=json.dumps(broken),
        check=False,
    )
    assert rejected.returncode != 0 and "notAField" in rejected.stderr
