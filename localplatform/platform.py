"""The operator on the local platform, deployed from manifests/overlays/local so that
the pod runner runs `maestro operator` as its ServiceAccount with exactly the RBAC of
manifests/base; and the example custom resources."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from typing import Any

import yaml

from maestro.localplatform.cluster import REPO, ClusterConfig, ClusterError, kubectl
from maestro.localplatform.kubectl import apply_manifests
from maestro.localplatform.objectstore import LocalObjectStore

OPERATOR_NAMESPACE = "maestro-system"
OPERATOR_SERVICE_ACCOUNT = "maestro-operator"
EXAMPLES = REPO / "manifests" / "examples"
LOCAL_RUN = REPO / "manifests" / "overlays" / "local" / "operator-local-run.yaml"
KINDS = "trainingruns,modeldeployments,abtests,driftchecks"


def with_operator_env(manifests: str, env: Mapping[str, str | None]) -> str:
    """The manifests with the operator container's env entries set (or, for None, removed)."""
    docs = [d for d in yaml.safe_load_all(manifests) if d]
    for doc in docs:
        if doc.get("kind") != "Deployment" or doc["metadata"]["name"] != "maestro-operator":
            continue
        container = doc["spec"]["template"]["spec"]["containers"][0]
        kept = [e for e in container.get("env") or [] if e["name"] not in env]
        container["env"] = kept + [{"name": k, "value": v} for k, v in env.items() if v is not None]
    return yaml.safe_dump_all(docs, sort_keys=False)


def deploy_operator(
    cfg: ClusterConfig, timeout: float = 90, env: Mapping[str, str | None] | None = None
) -> None:
    """Deploy the local overlay; `env` sets or (None) removes operator settings. The
    object store's Secret (maestro-objectstore) is in the namespace before the operator."""
    manifests = kubectl(cfg, "kustomize", str(REPO / "manifests" / "overlays" / "local")).stdout
    if env:
        manifests = with_operator_env(manifests, env)
    namespaces = [d for d in yaml.safe_load_all(manifests) if d and d.get("kind") == "Namespace"]
    if namespaces:
        apply_manifests(cfg, yaml.safe_dump_all(namespaces))
    LocalObjectStore(cfg).ensure_secret(OPERATOR_NAMESPACE)
    apply_manifests(cfg, manifests)
    proc = kubectl(
        cfg,
        "rollout",
        "status",
        "deployment/maestro-operator",
        "-n",
        OPERATOR_NAMESPACE,
        f"--timeout={int(timeout)}s",
        check=False,
    )
    if proc.returncode != 0:
        diagnosis = operator_diagnosis(cfg)
        # Left running, a half-started operator would reconcile other tests' namespaces.
        with contextlib.suppress(ClusterError):
            remove_operator(cfg)
        raise ClusterError(f"the operator did not become ready: {proc.stderr.strip()}\n{diagnosis}")


def remove_operator(cfg: ClusterConfig) -> None:
    kubectl(
        cfg,
        "delete",
        "deployment/maestro-operator",
        "-n",
        OPERATOR_NAMESPACE,
        "--ignore-not-found",
        "--wait=true",
        "--timeout=60s",
        check=False,
    )

    # The pod runner's finalizer keeps each pod until its process is dead, so once the
    # pods are gone no operator process is left to reconcile anything.
    def left() -> list[str]:
        return [pod["metadata"]["name"] for pod in operator_pods(cfg)]

    deadline = time.monotonic() + 60
    while left() and time.monotonic() < deadline:
        time.sleep(0.5)
    if left():
        raise ClusterError(
            f"operator pods still there 60s after their Deployment was deleted: "
            f"{', '.join(left())}\n{operator_diagnosis(cfg)}"
        )


def operator_pods(cfg: ClusterConfig) -> list[dict[str, Any]]:
    out = kubectl(
        cfg,
        "get",
        "pods",
        "-n",
        OPERATOR_NAMESPACE,
        "-l",
        "app.kubernetes.io/component=operator",
        "-o",
        "json",
    ).stdout
    pods: list[dict[str, Any]] = json.loads(out)["items"]
    return pods


def operator_logs(cfg: ClusterConfig) -> dict[str, str]:
    """Pod name -> log, for the operator pods that run now (the pod runner's work dirs)."""
    out = {}
    for pod in operator_pods(cfg):
        log = cfg.pod_log(pod, "operator")
        if log.exists():
            out[pod["metadata"]["name"]] = log.read_text(errors="replace")
    return out


def operator_log(cfg: ClusterConfig, lines: int = 40) -> str:
    logs = operator_logs(cfg)
    if not logs:
        return "(no operator log yet)"
    return "\n\n".join(
        f"--- {pod}\n" + "\n".join(log.splitlines()[-lines:]) for pod, log in logs.items()
    )


def local_operator_env(**overrides: str) -> dict[str, str]:
    """The MAESTRO_* settings the local overlay gives the in-cluster operator (its literal
    `value`s; those taken from Secrets or the pod, or naming the pod's address, are left
    out), with `overrides`: what a
    namespace-scoped operator process needs to behave the same."""
    deployment = yaml.safe_load(LOCAL_RUN.read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    # Values that expand other variables ($(POD_IP)) only make sense inside the pod.
    env = {
        e["name"]: str(e["value"])
        for e in container.get("env", [])
        if "value" in e and "$(" not in str(e["value"])
    }
    return {**env, **overrides}


def operator_diagnosis(cfg: ClusterConfig) -> str:
    """Where the operator's pods stand, the namespace's Events and the pods' logs."""
    pods = kubectl(
        cfg,
        "get",
        "pods",
        "-n",
        OPERATOR_NAMESPACE,
        "-o",
        "custom-columns=NAME:.metadata.name,PHASE:.status.phase,IP:.status.podIP,"
        "READY:.status.conditions[?(@.type=='Ready')].status,"
        "DELETING:.metadata.deletionTimestamp,NODE:.spec.nodeName",
        check=False,
    )
    events = kubectl(
        cfg,
        "get",
        "events",
        "-n",
        OPERATOR_NAMESPACE,
        "--sort-by=.lastTimestamp",
        check=False,
    )
    nodes = kubectl(cfg, "get", "nodes", check=False)
    return (
        f"pods:\n{pods.stdout or pods.stderr}\nnodes:\n{nodes.stdout or nodes.stderr}\n"
        f"events:\n{events.stdout[-3000:] or events.stderr}\n"
        f"operator logs end:\n{operator_log(cfg)}"
    )


def apply_examples(cfg: ClusterConfig, namespace: str) -> list[dict[str, Any]]:
    """Apply every example CR into `namespace`; return their identities."""
    out = kubectl(cfg, "apply", "-n", namespace, "-k", str(EXAMPLES), "-o", "json").stdout
    applied = json.loads(out)
    items = applied.get("items", [applied])
    return [{"kind": i["kind"], "name": i["metadata"]["name"]} for i in items]


def wait_for_conditions(cfg: ClusterConfig, namespace: str, timeout: float) -> dict[str, Any]:
    """Wait until every custom resource in `namespace` has status.conditions."""
    deadline = time.monotonic() + timeout
    pending: list[str] = []
    while time.monotonic() < deadline:
        items = json.loads(kubectl(cfg, "get", KINDS, "-n", namespace, "-o", "json").stdout)[
            "items"
        ]
        pending = [
            f"{i['kind']}/{i['metadata']['name']}"
            for i in items
            if not (i.get("status") or {}).get("conditions")
        ]
        if items and not pending:
            return {f"{i['kind']}/{i['metadata']['name']}": i for i in items}
        time.sleep(0.2)
    raise ClusterError(
        f"no status.conditions within {timeout:.0f}s on: {', '.join(pending)}\n"
        f"operator log ends:\n{operator_log(cfg)}"
    )
