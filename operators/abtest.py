"""ABTest handlers: thin; the decisions live in maestro.operators.decisions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kopf

from maestro.operators.api.abtest import ABTest, ABTestSpec
from maestro.operators.api.common import GROUP, VERSION
from maestro.operators.decisions import Verdict, decide_abtest
from maestro.operators.handlers import (
    ABTEST_REFS_INDEX,
    DeploymentsIndex,
    RefKey,
    Runtime,
    Snapshot,
    deployment_facts,
    deployments_index,
    reconcile_via_api,
    reconcile_via_patch,
    snapshot,
)

PLURAL = ABTest.INFO.plural


def decider(namespace: str, deployments: DeploymentsIndex) -> Callable[[ABTestSpec], Verdict]:
    def decide(spec: ABTestSpec) -> Verdict:
        return decide_abtest(spec, deployment_facts(deployments, namespace, [spec.deployment]))

    return decide


def recheck(snap: Snapshot, deployments: DeploymentsIndex, runtime: Runtime) -> None:
    namespace = snap["metadata"]["namespace"]
    reconcile_via_api(ABTest, snap, decider(namespace, deployments), runtime)


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    @kopf.index(GROUP, VERSION, PLURAL, id=ABTEST_REFS_INDEX, registry=registry)
    def abtest_refs(
        *, namespace: str | None, body: kopf.Body, spec: kopf.Spec, **_: Any
    ) -> dict[RefKey, Snapshot]:
        deployment = spec.get("deployment")
        if not isinstance(deployment, str):
            return {}
        return {(namespace or "", "ModelDeployment", deployment): snapshot(body)}

    @kopf.on.event(GROUP, VERSION, PLURAL, id="abtest", registry=registry)
    def abtest_event(
        *, type: str, body: kopf.Body, patch: kopf.Patch, namespace: str | None, **kwargs: Any
    ) -> None:
        if type == "DELETED":
            return
        decide = decider(namespace or "", deployments_index(kwargs))
        reconcile_via_patch(ABTest, body, patch, decide, runtime)
