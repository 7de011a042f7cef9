"""Every kustomization builds, and the objects it builds are what each environment needs.

Rendering only: `kubectl kustomize` needs no cluster. Whether the API server accepts
the result is tests/cluster/test_manifests.py's job.
"""

from __future__ import annotations

import subprocess
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
TARGETS = ("base", "overlays/production", "overlays/minikube")
NAMESPACE = "maestro-system"
IMAGE_REPOSITORY = "ghcr.io/maestro-ml/maestro"
OPERATOR_SELECTOR = {"app.kubernetes.io/name": "maestro", "app.kubernetes.io/component": "operator"}
COMMON_LABELS = {"app.kubernetes.io/name": "maestro", "app.kubernetes.io/part-of": "maestro-ml"}
OUR_CRDS = {
    f"{plural}.mlops.maestro.dev"
    for plural in ("trainingruns", "modeldeployments", "abtests", "driftchecks")
}
CLUSTER_SCOPED_KINDS = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "ClusterKopfPeering",
}

Obj = dict[str, Any]


# --- the restricted Pod Security profile, as a pure check ---------------------------------
# https://kubernetes.io/docs/concepts/security/pod-security-standards/ (baseline + restricted)

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


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from pod_spec.get(key) or []


def restricted_violations(pod_spec: Mapping[str, Any]) -> list[str]:
    """Why `pod_spec` would be refused where `restricted` is enforced; empty if it would not."""
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
    found += _selinux_violations("pod", pod_sc)

    containers = list(_containers(pod_spec))
    if not containers:
        found.append("pod: no containers")
    for c in containers:
        where = f"container {c.get('name')}"
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
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(
                f"{where}: seccompProfile is {seccomp or 'unset'}, not RuntimeDefault or Localhost"
            )
        if ((sc.get("appArmorProfile") or {}).get("type")) == "Unconfined":
            found.append(f"{where}: appArmorProfile is Unconfined")
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


def _compliant_pod() -> Obj:
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


def _with(path: str, value: Any) -> Obj:
    """The compliant pod with one field changed; `path` is dotted, digits index lists."""
    pod = _compliant_pod()
    *parents, last = path.split(".")
    node: Any = pod
    for key in parents:
        node = node[int(key)] if key.isdigit() else node.setdefault(key, {})
    node[last] = value
    return pod


VIOLATIONS = {
    # id: (the compliant pod with one change, a fragment of the expected finding)
    "host-network": (_with("hostNetwork", True), "hostNetwork"),
    "pod-may-run-as-root": (_with("securityContext.runAsNonRoot", False), "runAsNonRoot"),
    "container-may-run-as-root": (
        _with("containers.0.securityContext.runAsNonRoot", False),
        "runAsNonRoot",
    ),
    "no-seccomp": (_with("securityContext.seccompProfile", {}), "seccompProfile"),
    "container-unconfined": (
        _with("containers.0.securityContext.seccompProfile", {"type": "Unconfined"}),
        "seccompProfile",
    ),
    "privilege-escalation": (
        _with("containers.0.securityContext.allowPrivilegeEscalation", True),
        "allowPrivilegeEscalation",
    ),
    "capabilities-kept": (_with("containers.0.securityContext.capabilities", {}), "drop ALL"),
    "capability-added": (
        _with("containers.0.securityContext.capabilities.add", ["NET_ADMIN"]),
        "NET_ADMIN",
    ),
    "privileged": (_with("containers.0.securityContext.privileged", True), "privileged"),
    "root-uid": (_with("containers.0.securityContext.runAsUser", 0), "runAsUser is 0"),
    "host-port": (_with("containers.0.ports", [{"containerPort": 80, "hostPort": 80}]), "hostPort"),
    "host-path": (_with("volumes", [{"name": "host", "hostPath": {"path": "/"}}]), "hostPath"),
    "bare-init-container": (_with("initContainers", [{"name": "init"}]), "container init"),
}


@pytest.mark.parametrize(("pod_spec", "expected"), VIOLATIONS.values(), ids=VIOLATIONS.keys())
def test_restricted_check_finds_each_violation(pod_spec: Obj, expected: str) -> None:
    found = restricted_violations(pod_spec)
    assert any(expected in f for f in found), found


def test_restricted_check_accepts_a_compliant_pod() -> None:
    assert restricted_violations(_compliant_pod()) == []
    assert (
        restricted_violations(
            _with("containers.0.securityContext.capabilities.add", ["NET_BIND_SERVICE"])
        )
        == []
    )


# --- the builds ------------------------------------------------------------------------------


def kustomize(kubectl_bin: Path, target: str) -> list[Obj]:
    proc = subprocess.run(
        [str(kubectl_bin), "kustomize", str(MANIFESTS / target)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        pytest.fail(f"`kubectl kustomize manifests/{target}` failed:\n{proc.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="module")
def built(kubectl_bin: Path) -> dict[str, list[Obj]]:
    return {target: kustomize(kubectl_bin, target) for target in TARGETS}


def only(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    matches = [o for o in objs if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def operator_container(objs: list[Obj]) -> Obj:
    deployment = only(objs, "Deployment", "maestro-operator")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "operator")


def project_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


@pytest.mark.parametrize("target", TARGETS)
def test_objects_are_named_namespaced_and_labelled(
    built: dict[str, list[Obj]], target: str
) -> None:
    for obj in built[target]:
        meta = obj["metadata"]
        what = f"{obj['kind']}/{meta['name']}"
        if obj["kind"] == "CustomResourceDefinition":
            continue  # generated by `make manifests`, not ours to label here
        if obj["kind"] in CLUSTER_SCOPED_KINDS:
            assert "namespace" not in meta, f"{what} is cluster-scoped"
        else:
            assert meta.get("namespace") == NAMESPACE, what
        labels = meta.get("labels") or {}
        assert COMMON_LABELS.items() <= labels.items(), f"{what} lacks {COMMON_LABELS}"
        if obj["kind"] != "Namespace":
            assert labels.get("app.kubernetes.io/component") == "operator", what


def test_base_carries_crds_rbac_and_operator(built: dict[str, list[Obj]]) -> None:
    objs = built["base"]
    crds = {o["metadata"]["name"] for o in objs if o["kind"] == "CustomResourceDefinition"}
    assert crds >= OUR_CRDS
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} <= crds
    only(objs, "Namespace", NAMESPACE)
    only(objs, "ServiceAccount", "maestro-operator")
    only(objs, "ClusterRole", "maestro-operator")
    only(objs, "ClusterRoleBinding", "maestro-operator")
    only(objs, "Service", "maestro-operator-metrics")
    only(objs, "Deployment", "maestro-operator")


@pytest.mark.parametrize("target", TARGETS)
def test_every_pod_template_meets_the_restricted_profile(
    built: dict[str, list[Obj]], target: str
) -> None:
    templates = {
        f"{o['kind']}/{o['metadata']['name']}": o["spec"]["template"]["spec"]
        for o in built[target]
        if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")
    }
    assert templates
    for what, pod_spec in templates.items():
        assert restricted_violations(pod_spec) == [], what


@pytest.mark.parametrize("target", TARGETS)
def test_operator_pod_is_hardened_beyond_the_profile(
    built: dict[str, list[Obj]], target: str
) -> None:
    deployment = only(built[target], "Deployment", "maestro-operator")
    pod = deployment["spec"]["template"]["spec"]
    container = operator_container(built[target])
    sc = container["securityContext"]
    assert pod["securityContext"]["runAsUser"] == 10001
    assert sc["readOnlyRootFilesystem"] is True
    tmp_volumes = {m["name"] for m in container["volumeMounts"] if m["mountPath"] == "/tmp"}
    assert tmp_volumes, "a read-only root filesystem needs a writable /tmp"
    assert all("emptyDir" in v for v in pod["volumes"] if v["name"] in tmp_volumes)
    assert pod["serviceAccountName"] == "maestro-operator"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{kind} incomplete"


@pytest.mark.parametrize("target", TARGETS)
def test_operator_runs_with_peering_and_probes_on_its_liveness_port(
    built: dict[str, list[Obj]], target: str
) -> None:
    objs = built[target]
    container = operator_container(objs)
    assert container["command"] == ["maestro", "operator"]
    args = container.get("args", [])
    assert "--standalone" not in args
    peering = next(a.split("=", 1)[1] for a in args if a.startswith("--peering="))
    only(objs, "ClusterKopfPeering", peering)
    liveness = next(a.split("=", 1)[1] for a in args if a.startswith("--liveness="))
    assert liveness == "http://0.0.0.0:8080/healthz"

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz", probe
        assert ports.get(get["port"], get["port"]) == 8080, probe

    service = only(objs, "Service", "maestro-operator-metrics")
    assert service["spec"]["selector"] == OPERATOR_SELECTOR
    for port in service["spec"]["ports"]:
        assert ports.get(port["targetPort"], port["targetPort"]) == 8080


@pytest.mark.parametrize("target", TARGETS)
def test_selectors_match_the_operator_pods(built: dict[str, list[Obj]], target: str) -> None:
    deployment = only(built[target], "Deployment", "maestro-operator")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == OPERATOR_SELECTOR
    assert OPERATOR_SELECTOR.items() <= pod_labels.items()
    for obj in built[target]:
        if obj["kind"] in ("PodDisruptionBudget",):
            assert obj["spec"]["selector"]["matchLabels"] == OPERATOR_SELECTOR
        if obj["kind"] == "NetworkPolicy":
            assert obj["spec"]["podSelector"]["matchLabels"] == OPERATOR_SELECTOR


def _granted(cluster_role: Obj) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in cluster_role["rules"]
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def test_operator_rbac_grants_what_kopf_needs_and_nothing_broad(
    built: dict[str, list[Obj]],
) -> None:
    objs = built["base"]
    role = only(objs, "ClusterRole", "maestro-operator")
    granted = _granted(role)
    crs = ("trainingruns", "modeldeployments", "abtests", "driftchecks")
    needed = {
        *{("mlops.maestro.dev", r, v) for r in crs for v in ("get", "list", "watch", "patch")},
        *{("mlops.maestro.dev", f"{r}/status", v) for r in crs for v in ("patch", "update")},
        *{(g, "events", v) for g in ("", "events.k8s.io") for v in ("create", "patch")},
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
        ("", "namespaces", "list"),
        ("", "namespaces", "watch"),
        *{
            ("kopf.dev", r, v)
            for r in ("clusterkopfpeerings", "kopfpeerings")
            for v in ("get", "list", "watch", "patch")
        },
    }
    assert needed <= granted, f"missing: {sorted(needed - granted)}"
    assert not any("*" in triple for triple in granted), "no wildcards"
    assert not {v for _, _, v in granted} & {"escalate", "bind", "impersonate"}
    assert not {r for _, r, _ in granted} & {"pods/exec", "serviceaccounts/token"}
    # The operator writes the Optuna storage Secret of each tuning run, and can read none.
    assert {v for _, r, v in granted if r == "secrets"} <= {"create", "patch"}
    # TrainingRun workloads: applied and watched; deleted only by the garbage collector.
    workloads = {("batch", "jobs")} | {
        ("kubeflow.org", r) for r in ("pytorchjobs", "tfjobs", "xgboostjobs")
    }
    for group, resource in workloads:
        verbs = {v for g, r, v in granted if (g, r) == (group, resource)}
        assert verbs == {"get", "list", "watch", "create", "patch"}, (resource, verbs)
    assert {v for _, r, v in granted if r == "pods"} == {"list"}
    # The operator writes status and the objects it owns, never users' custom resources
    # (GitOps-clean), so it may not create, update or delete them.
    assert not {
        (g, r, v)
        for g, r, v in granted
        if g == "mlops.maestro.dev"
        and "/" not in r
        and v in ("create", "update", "delete", "deletecollection")
    }

    binding = only(objs, "ClusterRoleBinding", "maestro-operator")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "maestro-operator",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "maestro-operator", "namespace": NAMESPACE}
    ]


def test_production_is_highly_available_and_locked_down(built: dict[str, list[Obj]]) -> None:
    objs = built["overlays/production"]
    deployment = only(objs, "Deployment", "maestro-operator")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0

    pdb = only(objs, "PodDisruptionBudget", "maestro-operator")
    assert pdb["spec"]["minAvailable"] == 1

    labels = only(objs, "Namespace", NAMESPACE)["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"

    policy = only(objs, "NetworkPolicy", "maestro-operator")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule.get("ports", [])}
    assert {443, 6443, 53} <= egress_ports
    ingress_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule.get("ports", [])}
    assert ingress_ports == {"http"}

    resources = operator_container(objs)["resources"]
    assert resources["requests"] == {"cpu": "100m", "memory": "256Mi"}
    assert resources["limits"] == {"cpu": "500m", "memory": "512Mi"}


def test_minikube_is_one_small_replica_of_a_loaded_image(built: dict[str, list[Obj]]) -> None:
    objs = built["overlays/minikube"]
    assert only(objs, "Deployment", "maestro-operator")["spec"]["replicas"] == 1
    # minAvailable 1 with one replica would block every node drain.
    assert not [o for o in objs if o["kind"] == "PodDisruptionBudget"]
    container = operator_container(objs)
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["resources"]["requests"] == {"cpu": "50m", "memory": "128Mi"}


def test_one_image_everywhere_and_it_is_the_one_the_dockerfile_builds(
    built: dict[str, list[Obj]],
) -> None:
    expected = f"{IMAGE_REPOSITORY}:{project_version()}"
    images = {
        c["image"]
        for objs in built.values()
        for o in objs
        if o["kind"] == "Deployment"
        for c in _containers(o["spec"]["template"]["spec"])
    }
    assert images == {expected}
    dockerfile = (REPO / "Dockerfile").read_text()
    assert expected in dockerfile, "the Dockerfile's header names the image it builds"
    # The manifests' securityContext and command rely on these.
    assert "USER 10001" in dockerfile
    assert 'ENTRYPOINT ["maestro"]' in dockerfile
