"""The Kubernetes Pod Security Standards' `restricted` profile, as a pure check of a pod spec.

https://kubernetes.io/docs/concepts/security/pod-security-standards/ defines three profiles;
`restricted` is the `baseline` profile's controls plus its own. A namespace labelled
`pod-security.kubernetes.io/enforce: restricted` (as the production overlay labels
maestro-system) refuses any pod that breaks one of them, so every pod template Maestro
ships or renders is checked here before a cluster sees it.

Checked, for the pod and each init, regular and ephemeral container:

- baseline: host namespaces (hostNetwork, hostPID, hostIPC), Windows HostProcess, privileged
  containers, added capabilities, hostPath volumes (and, restricted, any volume type outside
  its list), hostPort, AppArmor and seccomp `Unconfined`, SELinux type/user/role, procMount,
  sysctls outside the safe set;
- restricted: allowPrivilegeEscalation false, runAsNonRoot true, runAsUser not 0, seccomp
  RuntimeDefault or Localhost, capabilities dropping ALL and adding at most
  NET_BIND_SERVICE.

The rules are the Linux ones: the exemptions for pods with `spec.os.name: windows` are not
applied. Pure: no I/O, no Kubernetes client.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
RESTRICTED_ADDABLE_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
BASELINE_SELINUX_TYPES = frozenset(
    {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
)
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
SECURE_SECCOMP_TYPES = ("RuntimeDefault", "Localhost")


def containers(pod_spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The pod's init, regular and ephemeral containers, in that order."""
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod_spec.get(key) or []


def restricted_violations(pod_spec: Mapping[str, Any]) -> list[str]:
    """Why `pod_spec` (a PodSpec, e.g. a Deployment's spec.template.spec) would be refused
    where `restricted` is enforced, each finding naming where and which field; empty if it
    would be admitted."""
    found: list[str] = []
    pod_sc = pod_spec.get("securityContext") or {}
    for host_ns in ("hostNetwork", "hostPID", "hostIPC"):
        if pod_spec.get(host_ns):
            found.append(f"pod: {host_ns} is true")
    for volume in pod_spec.get("volumes") or []:
        banned = set(volume) - {"name"} - RESTRICTED_VOLUME_TYPES
        if banned:
            found.append(f"volume {volume.get('name')}: type {sorted(banned)} not allowed")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"pod: sysctl {sysctl.get('name')} not allowed")
    if pod_sc.get("runAsUser") == 0:
        found.append("pod: runAsUser is 0")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    if pod_seccomp == "Unconfined":
        found.append("pod: seccompProfile is Unconfined")
    if ((pod_sc.get("appArmorProfile") or {}).get("type")) == "Unconfined":
        found.append("pod: appArmorProfile is Unconfined")
    if (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
        found.append("pod: windowsOptions.hostProcess is true")
    found += _selinux_violations("pod", pod_sc)

    every = list(containers(pod_spec))
    if not every:
        found.append("pod: no containers")
    for c in every:
        found += _container_violations(c, pod_sc, pod_seccomp)
    return found


def _container_violations(
    c: Mapping[str, Any], pod_sc: Mapping[str, Any], pod_seccomp: str | None
) -> list[str]:
    where = f"container {c.get('name')}"
    found: list[str] = []
    sc = c.get("securityContext") or {}
    if sc.get("privileged"):
        found.append(f"{where}: privileged")
    if sc.get("allowPrivilegeEscalation") is not False:
        found.append(f"{where}: allowPrivilegeEscalation is not false")
    run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
    if run_as_non_root is not True:
        found.append(f"{where}: runAsNonRoot is not true")
    if sc.get("runAsUser") == 0:
        found.append(f"{where}: runAsUser is 0")
    seccomp = (sc.get("seccompProfile") or {}).get("type", pod_seccomp)
    if seccomp not in SECURE_SECCOMP_TYPES:
        found.append(
            f"{where}: seccompProfile is {seccomp or 'unset'}, not RuntimeDefault or Localhost"
        )
    if ((sc.get("appArmorProfile") or {}).get("type")) == "Unconfined":
        found.append(f"{where}: appArmorProfile is Unconfined")
    if (sc.get("windowsOptions") or {}).get("hostProcess"):
        found.append(f"{where}: windowsOptions.hostProcess is true")
    caps = sc.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        found.append(f"{where}: capabilities do not drop ALL")
    added = set(caps.get("add") or []) - RESTRICTED_ADDABLE_CAPABILITIES
    if added:
        found.append(f"{where}: adds capabilities {sorted(added)}")
    if sc.get("procMount", "Default") != "Default":
        found.append(f"{where}: procMount is {sc['procMount']}")
    found += _selinux_violations(where, sc)
    for port in c.get("ports") or []:
        if port.get("hostPort"):
            found.append(f"{where}: hostPort {port['hostPort']}")
    return found


def _selinux_violations(where: str, security_context: Mapping[str, Any]) -> list[str]:
    options = security_context.get("seLinuxOptions") or {}
    found = [
        f"{where}: seLinuxOptions.{key} is set" for key in ("user", "role") if options.get(key)
    ]
    if options.get("type", "") not in BASELINE_SELINUX_TYPES:
        found.append(f"{where}: seLinuxOptions.type {options['type']} not allowed")
    return found
