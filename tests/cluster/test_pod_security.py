"""The restricted Pod Security profile, enforced by the API server in the namespaces Maestro
serves into (the `namespace` fixture labels them as the local platform and production do):
a rendered serving pod is admitted, the same pod broken in any one restricted control is
refused, and the pure checker in security/pod_security.py agrees with the API server."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from maestro.security.pod_security import restricted_violations
from tests.conftest import Cluster
from tests.modeldeployment_render_cases import rendered

pytestmark = pytest.mark.cluster

Pod = dict[str, Any]


def serving_pod(namespace: str) -> Pod:
    deployment = next(o for o in rendered("canary") if o["kind"] == "Deployment")
    template = copy.deepcopy(deployment["spec"]["template"])
    template["metadata"].pop("annotations", None)  # the Vault injector's, not admission's
    template["spec"]["serviceAccountName"] = "default"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "serving",
            "namespace": namespace,
            "labels": template["metadata"]["labels"],
        },
        "spec": template["spec"],
    }


def container(pod: Pod) -> dict[str, Any]:
    first: dict[str, Any] = pod["spec"]["containers"][0]
    return first


def privileged(pod: Pod) -> None:
    # (Validation refuses privileged with allowPrivilegeEscalation false before admission.)
    container(pod)["securityContext"].pop("allowPrivilegeEscalation")
    container(pod)["securityContext"]["privileged"] = True


def escalating(pod: Pod) -> None:
    container(pod)["securityContext"]["allowPrivilegeEscalation"] = True


def as_root(pod: Pod) -> None:
    pod["spec"]["securityContext"]["runAsNonRoot"] = False
    pod["spec"]["securityContext"]["runAsUser"] = 0
    container(pod)["securityContext"].pop("runAsNonRoot", None)


def net_admin(pod: Pod) -> None:
    container(pod)["securityContext"]["capabilities"] = {"drop": ["ALL"], "add": ["NET_ADMIN"]}


def host_path(pod: Pod) -> None:
    pod["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/var/run"}})


def unconfined(pod: Pod) -> None:
    pod["spec"]["securityContext"]["seccompProfile"] = {"type": "Unconfined"}


def host_network(pod: Pod) -> None:
    pod["spec"]["hostNetwork"] = True


BREAKS: dict[str, Callable[[Pod], None]] = {
    "privileged": privileged,
    "allowPrivilegeEscalation": escalating,
    "runAsNonRoot": as_root,
    "capabilities": net_admin,
    "hostPath": host_path,
    "seccompProfile": unconfined,
    "hostNetwork": host_network,
}


def create(cluster: Cluster, pod: Pod) -> Any:
    return cluster.kubectl(
        "create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False
    )


def test_a_rendered_serving_pod_is_admitted(cluster: Cluster, namespace: str) -> None:
    pod = serving_pod(namespace)
    assert restricted_violations(pod["spec"]) == []
    proc = create(cluster, pod)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("control", list(BREAKS))
def test_a_pod_breaking_restricted_is_refused_by_the_api_server(
    cluster: Cluster, namespace: str, control: str
) -> None:
    pod = serving_pod(namespace)
    BREAKS[control](pod)
    proc = create(cluster, pod)
    assert proc.returncode != 0, f"admitted with {control} broken"
    assert 'violates PodSecurity "restricted:latest"' in proc.stderr, proc.stderr
    # The pure checker Maestro runs on every template refuses it too.
    assert restricted_violations(pod["spec"]), control
