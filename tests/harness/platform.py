"""The operator on the local platform, deployed from manifests/overlays/local so that
the pod runner runs `maestro operator` as its ServiceAccount with exactly the RBAC of
manifests/base; and the example custom resources."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.harness.cluster import REPO, ClusterConfig, ClusterError, kubectl

OPERATOR_NAMESPACE = "maestro-system"
OPERATOR_SERVICE_ACCOUNT = "maestro-operator"
EXAMPLES = REPO / "manifests" / "examples"
KINDS = "trainingruns,modeldeployments,abtests,driftchecks"


def deploy_operator(cfg: ClusterConfig, timeout: float = 90) -> None:
    manifests = kubectl(cfg, "kustomize", str(REPO / "manifests" / "overlays" / "local")).stdout
    kubectl(
        cfg,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=maestro-local",
        "-f",
        "-",
        input=manifests,
    )
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
        raise ClusterError(
            f"the operator did not become ready: {proc.stderr.strip()}\n"
            f"its log ends:\n{operator_log(cfg)}"
        )


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
    kubectl(
        cfg,
        "wait",
        "--for=delete",
        "pod",
        "-n",
        OPERATOR_NAMESPACE,
        "-l",
        "app.kubernetes.io/component=operator",
        "--timeout=60s",
        check=False,
    )


def operator_logs(cfg: ClusterConfig) -> dict[str, str]:
    """Pod name -> log, for the operator pods that run now (the pod runner's work dirs)."""
    pods = json.loads(
        kubectl(
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
    )["items"]
    out = {}
    for pod in pods:
        meta = pod["metadata"]
        log = (
            cfg.state
            / "pods"
            / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
            / "operator.log"
        )
        if log.exists():
            out[meta["name"]] = log.read_text(errors="replace")
    return out


def operator_log(cfg: ClusterConfig, lines: int = 40) -> str:
    logs = operator_logs(cfg)
    if not logs:
        return "(no operator log yet)"
    return "\n\n".join(
        f"--- {pod}\n" + "\n".join(log.splitlines()[-lines:]) for pod, log in logs.items()
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
