"""Least privilege, proven from the API server's own audit log (the local platform records
every request of a ServiceAccount outside kube-system): every (verb, resource) the
operator's ClusterRole grants was used by the operator during this test session, or is
listed below with the reason this platform cannot exercise it; none of its requests was
denied.

It runs last (tests/conftest.py orders it so), reading what the whole session's in-cluster
operator did (the e2e lifecycle, the RBAC tests), after driving the examples itself. The
serving and trainer pods' ServiceAccounts must not have made a single request."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from maestro.localplatform import platform
from maestro.localplatform.cluster import ClusterConfig
from maestro.localplatform.components import audit_log

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
OPERATOR = (
    f"system:serviceaccount:{platform.OPERATOR_NAMESPACE}:{platform.OPERATOR_SERVICE_ACCOUNT}"
)
ISTIO = (
    "the local platform runs without Istio (MAESTRO_ISTIO=false); the rendered Istio"
    " objects are checked by server-side dry run"
)
# Granted, and not exercised by the session, with the reason.
UNUSED_WITH_REASON: dict[tuple[str, str, str], str] = {
    **{
        (group, resource, verb): ISTIO
        for group, resources in (
            ("networking.istio.io", ("virtualservices", "destinationrules")),
            ("security.istio.io", ("peerauthentications", "authorizationpolicies")),
        )
        for resource in resources
        for verb in ("list", "watch", "create", "patch")
    },
    **{
        ("kubeflow.org", kind, verb): (
            "no TensorFlow or distributed XGBoost TrainingRun runs as the operator's"
            " ServiceAccount here; the code path is the PyTorchJob's, which is used"
        )
        for kind in ("tfjobs", "xgboostjobs")
        for verb in ("get", "create", "patch")
    },
    **{
        ("mlops.maestro.dev", f"{kind}/finalizers", "update"): (
            "authorised by the OwnerReferencesPermissionEnforcement admission plugin (on in"
            " the local API server) for owned objects' blockOwnerDeletion: no request of its own"
        )
        for kind in ("trainingruns", "modeldeployments", "driftchecks")
    },
    ("", "serviceaccounts", "delete"): (
        "pruning the ServiceAccount of a ModelDeployment that drops spec.secrets; no test"
        " of the session drops them"
    ),
    **{
        ("", "namespaces", verb): (
            "Kopf lists and watches namespaces only for an operator serving chosen ones"
            " (MAESTRO_NAMESPACES); the installation under test serves all"
        )
        for verb in ("list", "watch")
    },
}


def granted() -> set[tuple[str, str, str]]:
    role = yaml.safe_load((REPO / "manifests" / "base" / "clusterrole.yaml").read_text())
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def entries(path: Path, since: float) -> Iterator[dict[str, Any]]:
    for file in sorted(path.parent.glob(path.name + "*")):
        for line in file.read_text().splitlines():
            entry = json.loads(line)
            stamp = entry.get("stageTimestamp") or entry.get("requestReceivedTimestamp")
            if stamp and _epoch(stamp) >= since:
                yield entry


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def requests_of(entry: dict[str, Any]) -> list[tuple[str, str, str]]:
    """What one request needed: its verb, and `create` for a server-side apply (a patch)
    that created the object (the API server authorises both; the log shows the patch)."""
    ref = entry.get("objectRef") or {}
    resource = ref.get("resource", "")
    if ref.get("subresource"):
        resource += "/" + ref["subresource"]
    group, verb = ref.get("apiGroup", ""), entry["verb"]
    needed = [(group, resource, verb)]
    if verb == "patch" and (entry.get("responseStatus") or {}).get("code") == 201:
        needed.append((group, resource, "create"))
    return needed


def test_the_operator_uses_every_rule_it_is_granted_and_is_never_denied(
    deployed_operator: ClusterConfig, namespace: str, session_started: float
) -> None:
    platform.apply_examples(deployed_operator, namespace)
    platform.wait_for_conditions(deployed_operator, namespace, timeout=30)
    time.sleep(2)  # the audit log is written in batches
    log = audit_log(deployed_operator)
    assert log.exists(), f"no audit log at {log}: is the API server started by this platform?"
    used: set[tuple[str, str, str]] = set()
    denied: list[str] = []
    serving: list[str] = []
    for entry in entries(log, session_started):
        user = entry["user"]["username"]
        if user == OPERATOR:
            used.update(requests_of(entry))
            # (A 403 without this is admission's, e.g. an Event into a terminating namespace.)
            if (entry.get("annotations") or {}).get("authorization.k8s.io/decision") == "forbid":
                denied.append(f"{entry['verb']} {entry.get('requestURI', '')}")
        elif user.endswith(":default"):
            # Serving and trainer pods run as their namespace's default ServiceAccount here
            # (the local overlay names none) and need the API for nothing. (Other accounts
            # are the platform's own tests, e.g. a pod that lists on purpose.)
            serving.append(f"{user} {entry['verb']} {entry.get('requestURI')}")
    assert used, "no request of the operator's ServiceAccount recorded in this session"
    assert denied == [], f"requests of the operator denied by RBAC: {denied}"
    unused = sorted(granted() - used - set(UNUSED_WITH_REASON))
    assert unused == [], f"granted but never used (remove, or list with a reason): {unused}"
    stale = sorted(set(UNUSED_WITH_REASON) & used)
    assert stale == [], f"listed as unused but used: {stale}"
    assert serving == [], serving
