"""Cluster DNS as the kubelet gives it: CoreDNS answers for Services and headless Services'
pods on the kube-dns ClusterIP, and each pod process reads a resolv.conf of its own (the
pod runner binds it over /etc/resolv.conf in the container's mount namespace)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from maestro.localplatform.cluster import ClusterConfig
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

LOCAL = {"maestro.dev/local-run": "true"}
IMAGE = "ghcr.io/maestro-ml/maestro:0.1.0"

# Resolves each name as a program in the pod would (getaddrinfo through /etc/resolv.conf),
# retrying while the headless Service waits for its ready pod, and prints what it got.
RESOLVE = """
import json, socket, sys, time
names = sys.argv[1:]
found = {}
deadline = time.monotonic() + 30
for name in names:
    while True:
        try:
            found[name] = sorted({a[4][0] for a in socket.getaddrinfo(name, None, socket.AF_INET)})
            break
        except OSError as err:
            if time.monotonic() > deadline:
                found[name] = str(err)
                break
            time.sleep(0.5)
print("RESOLV.CONF " + json.dumps(open("/etc/resolv.conf").read()))
print("RESOLVED " + json.dumps(found))
"""


def apply(cluster: Cluster, namespace: str, *objs: dict[str, Any]) -> None:
    for obj in objs:
        obj.setdefault("metadata", {})["namespace"] = namespace
        cluster.kubectl("apply", "-f", "-", input=json.dumps(obj))


def test_service_names_resolve_inside_pod_processes(cluster: Cluster, plain_namespace: str) -> None:
    namespace = plain_namespace
    cfg = ClusterConfig()
    apply(
        cluster,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]},
        },
        # Headless, as the training operator makes them: its name is its ready pods.
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "peer-0"},
            "spec": {
                "clusterIP": "None",
                "selector": {"app": "peer"},
                "ports": [{"port": 23456}],
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "peer", "labels": {"app": "peer", **LOCAL}},
            "spec": {"containers": [{"name": "main", "image": IMAGE, "command": ["sleep", "60"]}]},
        },
    )
    web_ip = json.loads(
        cluster.kubectl("get", "service", "web", "-n", namespace, "-o", "json").stdout
    )["spec"]["clusterIP"]
    names = [
        "web",
        f"web.{namespace}",
        f"web.{namespace}.svc.cluster.local",
        "kubernetes.default",
        "peer-0",
    ]
    apply(
        cluster,
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "client", "labels": LOCAL},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "image": IMAGE,
                        "command": ["python", "-c", RESOLVE, *names],
                    }
                ],
            },
        },
    )
    cluster.kubectl(
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/client",
        "-n",
        namespace,
        "--timeout=60s",
    )
    peer = json.loads(cluster.kubectl("get", "pod", "peer", "-n", namespace, "-o", "json").stdout)
    client = json.loads(
        cluster.kubectl("get", "pod", "client", "-n", namespace, "-o", "json").stdout
    )
    log = cfg.pod_log(client, "main").read_text()
    lines = {
        line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1])
        for line in log.splitlines()
        if line.startswith(("RESOLV.CONF ", "RESOLVED "))
    }
    assert lines["RESOLV.CONF"] == (
        f"search {namespace}.svc.cluster.local svc.cluster.local cluster.local\n"
        f"nameserver {cfg.dns_ip}\n"
        "options ndots:5\n"
    ), log
    resolved = lines["RESOLVED"]
    for name in names[:3]:
        assert resolved[name] == [web_ip], (name, log)
    assert resolved["kubernetes.default"] == [cfg.service_ip], log
    assert resolved["peer-0"] == [peer["status"]["podIP"]], log
    # The host's own resolv.conf is untouched: the pod's was bound in its mount namespace.
    with open("/etc/resolv.conf") as host:
        assert cfg.dns_ip not in host.read()
