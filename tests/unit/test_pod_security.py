"""The restricted Pod Security check: one compliant pod, then one change per violation."""

from __future__ import annotations

from typing import Any

import pytest

from maestro.security.pod_security import restricted_violations

pytestmark = pytest.mark.unit

Obj = dict[str, Any]


def compliant_pod() -> Obj:
    return {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            {
                "name": "app",
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {}}],
    }


def changed(path: str, value: Any) -> Obj:
    """The compliant pod with one field changed; `path` is dotted, digits index lists."""
    pod = compliant_pod()
    *parents, last = path.split(".")
    node: Any = pod
    for key in parents:
        node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
    node[last] = value
    return pod


COMPLIANT = {
    "minimal": compliant_pod(),
    "net-bind-service-added": changed(
        "containers.0.securityContext.capabilities.add", ["NET_BIND_SERVICE"]
    ),
    "localhost-seccomp-on-the-container": changed(
        "containers.0.securityContext.seccompProfile", {"type": "Localhost"}
    ),
    "non-root-set-per-container": changed("containers.0.securityContext.runAsNonRoot", True),
    "safe-sysctl": changed(
        "securityContext.sysctls", [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]
    ),
    "allowed-volume-types": changed(
        "volumes",
        [
            {"name": "config", "configMap": {"name": "c"}},
            {"name": "token", "projected": {"sources": []}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "d"}},
        ],
    ),
}

VIOLATIONS = {
    # id: (the compliant pod with one change, a fragment of the expected finding)
    "privileged": (changed("containers.0.securityContext.privileged", True), "privileged"),
    "privilege-escalation": (
        changed("containers.0.securityContext.allowPrivilegeEscalation", True),
        "allowPrivilegeEscalation",
    ),
    "privilege-escalation-unset": (
        changed("containers.0.securityContext", {"capabilities": {"drop": ["ALL"]}}),
        "allowPrivilegeEscalation",
    ),
    "pod-may-run-as-root": (changed("securityContext.runAsNonRoot", False), "runAsNonRoot"),
    "container-may-run-as-root": (
        changed("containers.0.securityContext.runAsNonRoot", False),
        "runAsNonRoot",
    ),
    "root-uid": (changed("containers.0.securityContext.runAsUser", 0), "runAsUser is 0"),
    "pod-root-uid": (changed("securityContext.runAsUser", 0), "pod: runAsUser is 0"),
    "capabilities-kept": (changed("containers.0.securityContext.capabilities", {}), "drop ALL"),
    "capability-added": (
        changed("containers.0.securityContext.capabilities.add", ["NET_ADMIN"]),
        "NET_ADMIN",
    ),
    "no-seccomp": (changed("securityContext.seccompProfile", {}), "seccompProfile"),
    "container-unconfined": (
        changed("containers.0.securityContext.seccompProfile", {"type": "Unconfined"}),
        "seccompProfile",
    ),
    "pod-unconfined": (
        changed("securityContext.seccompProfile", {"type": "Unconfined"}),
        "pod: seccompProfile is Unconfined",
    ),
    "apparmor-unconfined": (
        changed("containers.0.securityContext.appArmorProfile", {"type": "Unconfined"}),
        "appArmorProfile",
    ),
    "host-network": (changed("hostNetwork", True), "hostNetwork"),
    "host-pid": (changed("hostPID", True), "hostPID"),
    "host-path": (changed("volumes", [{"name": "host", "hostPath": {"path": "/"}}]), "hostPath"),
    "host-port": (
        changed("containers.0.ports", [{"containerPort": 80, "hostPort": 80}]),
        "hostPort",
    ),
    "host-process": (
        changed("containers.0.securityContext.windowsOptions", {"hostProcess": True}),
        "windowsOptions.hostProcess",
    ),
    "proc-mount": (changed("containers.0.securityContext.procMount", "Unmasked"), "procMount"),
    "unsafe-sysctl": (
        changed("securityContext.sysctls", [{"name": "kernel.msgmax", "value": "1"}]),
        "sysctl kernel.msgmax",
    ),
    "selinux-user": (
        changed("securityContext.seLinuxOptions", {"user": "system_u"}),
        "seLinuxOptions.user",
    ),
    "selinux-type": (
        changed("containers.0.securityContext.seLinuxOptions", {"type": "spc_t"}),
        "seLinuxOptions.type",
    ),
    "bare-init-container": (changed("initContainers", [{"name": "init"}]), "container init"),
    "no-containers": (changed("containers", []), "no containers"),
}


@pytest.mark.parametrize("pod_spec", COMPLIANT.values(), ids=COMPLIANT.keys())
def test_a_compliant_pod_has_no_violation(pod_spec: Obj) -> None:
    assert restricted_violations(pod_spec) == []


@pytest.mark.parametrize(("pod_spec", "expected"), VIOLATIONS.values(), ids=VIOLATIONS.keys())
def test_each_violation_is_found_naming_the_field(pod_spec: Obj, expected: str) -> None:
    found = restricted_violations(pod_spec)
    assert any(expected in f for f in found), found


def test_every_violation_of_every_container_is_reported() -> None:
    pod = changed("containers.0.securityContext", {"privileged": True})
    pod["containers"].append({"name": "sidecar", "ports": [{"hostPort": 9000}]})
    found = restricted_violations(pod)
    assert {f.split(":")[0] for f in found} == {"container app", "container sidecar"}
    assert "container app: privileged" in found
    assert "container sidecar: hostPort 9000" in found
    assert "container sidecar: capabilities do not drop ALL" in found
