"""Both overlays, as kustomize builds them, are accepted by a real API server.

`kubectl apply --dry-run=server` runs every object through defaulting, validation
(strict: unknown fields are errors), RBAC escalation checks and admission, Pod
Security included, without persisting anything. A dry run creates nothing, though,
so namespaced objects need their Namespace and custom resources their CRD to exist
for real: the fixture applies the missing ones first and deletes what it created.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest
import yaml

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = ("production", "minikube")
# The harness installs the project CRDs with this field manager; applying them under
# the same one shares ownership instead of conflicting.
FIELD_MANAGER = "maestro-local"
DRY_RUN_FIELD_MANAGER = "maestro-manifest-test"
PREREQUISITE_KINDS = ("Namespace", "CustomResourceDefinition")


class Cluster(Protocol):
    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]: ...


@dataclass(frozen=True)
class Build:
    overlay: str
    text: str
    objects: list[dict[str, Any]]


def _names(objects: list[dict[str, Any]], kind: str) -> list[str]:
    return [o["metadata"]["name"] for o in objects if o["kind"] == kind]


def _existing(cluster: Cluster, resource: str, names: list[str]) -> dict[str, dict[str, Any]]:
    if not names:
        return {}
    proc = cluster.kubectl("get", resource, *names, "--ignore-not-found", "-o", "json")
    if not proc.stdout.strip():
        return {}
    found = json.loads(proc.stdout)
    # One name prints the object itself, several print a List.
    items = found["items"] if found.get("kind") == "List" else [found]
    return {item["metadata"]["name"]: item for item in items}


def _wait_gone(cluster: Cluster, resource: str, names: list[str]) -> None:
    if names:
        cluster.kubectl(
            "wait", "--for=delete", "--timeout=120s", *(f"{resource}/{n}" for n in names)
        )


@pytest.fixture(scope="module", params=OVERLAYS)
def build(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[Build]:
    overlay: str = request.param
    text = cluster.kubectl("kustomize", str(REPO / "manifests" / "overlays" / overlay)).stdout
    objects = [doc for doc in yaml.safe_load_all(text) if doc]
    namespaces = _names(objects, "Namespace")
    crds = _names(objects, "CustomResourceDefinition")

    # A namespace still terminating from the previous overlay refuses new objects.
    terminating = [
        name
        for name, ns in _existing(cluster, "namespace", namespaces).items()
        if ns.get("status", {}).get("phase") == "Terminating"
    ]
    _wait_gone(cluster, "namespace", terminating)

    # Only what is missing is created, so a namespace or CRD someone else owns (the
    # harness installs our CRDs at start-up) is neither changed nor deleted here.
    created_ns = [n for n in namespaces if n not in _existing(cluster, "namespace", namespaces)]
    created_crds = [n for n in crds if n not in _existing(cluster, "crd", crds)]
    missing = [
        o
        for o in objects
        if (o["kind"], o["metadata"]["name"])
        in {
            *(("Namespace", n) for n in created_ns),
            *(("CustomResourceDefinition", n) for n in created_crds),
        }
    ]
    try:
        if missing:
            cluster.kubectl(
                "apply",
                "--server-side",
                f"--field-manager={FIELD_MANAGER}",
                "-f",
                "-",
                input=yaml.safe_dump_all(missing),
            )
        if created_crds:
            cluster.kubectl(
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                *(f"crd/{n}" for n in created_crds),
            )
        yield Build(overlay=overlay, text=text, objects=objects)
    finally:
        # Both deletions are requested before either is awaited, so one failing does
        # not leave the other behind.
        for resource, created in (("namespace", created_ns), ("crd", created_crds)):
            if created:
                cluster.kubectl(
                    "delete", resource, *created, "--ignore-not-found", "--wait=false", check=False
                )
        _wait_gone(cluster, "namespace", created_ns)


def test_prerequisites_are_in_the_build(build: Build) -> None:
    assert set(_names(build.objects, "Namespace")) == {"maestro-system"}
    assert _names(build.objects, "CustomResourceDefinition"), "the overlays carry our CRDs"


@pytest.mark.parametrize("apply_mode", ["client-side", "server-side"])
def test_overlay_passes_strict_server_dry_run(
    cluster: Cluster, build: Build, apply_mode: str
) -> None:
    args = ["apply", "--dry-run=server", "--validate=strict", "-f", "-"]
    if apply_mode == "server-side":
        # Forced: on a platform kept between runs, the operator deployed by an earlier run
        # (field manager maestro-local) may own fields these manifests now set otherwise.
        args += ["--server-side", "--force-conflicts", f"--field-manager={DRY_RUN_FIELD_MANAGER}"]
    proc = cluster.kubectl(*args, input=build.text, check=False)
    assert proc.returncode == 0, f"{build.overlay} ({apply_mode}) refused:\n{proc.stderr}"

    accepted = [line for line in proc.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(build.objects), proc.stdout
    # Pod Security admits a Deployment whose pods it would refuse, with only a warning.
    assert "would violate PodSecurity" not in proc.stderr, proc.stderr


def test_pods_are_admitted_where_restricted_is_enforced(
    cluster: Cluster, build: Build, namespace: str
) -> None:
    # A Deployment only draws a warning from Pod Security, and none at all when the
    # namespace already existed without its labels; a Pod gets the enforced verdict.
    cluster.kubectl(
        "label",
        "namespace",
        namespace,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    workloads = [
        o for o in build.objects if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job")
    ]
    assert workloads
    pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{w['kind'].lower()}-{w['metadata']['name']}"},
            "spec": w["spec"]["template"]["spec"],
        }
        for w in workloads
    ]
    # ServiceAccount admission refuses a pod whose account does not exist.
    for account in {p["spec"].get("serviceAccountName", "default") for p in pods} - {"default"}:
        cluster.kubectl("create", "serviceaccount", account, "-n", namespace)
    proc = cluster.kubectl(
        "create",
        "--dry-run=server",
        "-n",
        namespace,
        "-f",
        "-",
        input=yaml.safe_dump_all(pods),
        check=False,
    )
    assert proc.returncode == 0, f"{build.overlay}: {proc.stderr}"
