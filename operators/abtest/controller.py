"""ABTest controller: gather the ModelDeployment the test names, decide (abtest.decide),
report. Nothing is applied yet: no ABTest workload exists until its controller lands."""

from __future__ import annotations

from maestro.operators.abtest.decide import decide, referenced_deployments
from maestro.operators.api.abtest import ABTest, ABTestSpec, ABTestStatus
from maestro.operators.core.checker import CheckingController
from maestro.operators.core.gather import deployment_facts
from maestro.operators.core.kube import Kube
from maestro.operators.core.runtime import Runtime
from maestro.operators.core.verdict import Verdict


def gather_and_decide(spec: ABTestSpec, kube: Kube, namespace: str) -> Verdict:
    return decide(spec, deployment_facts(kube, namespace, referenced_deployments(spec)))


def build(runtime: Runtime) -> CheckingController[ABTestSpec]:
    return CheckingController(
        runtime=runtime,
        resource=ABTest,
        spec_model=ABTestSpec,
        status_model=ABTestStatus,
        decide=gather_and_decide,
    )
