"""Reads of other kinds' objects that several controllers gather before deciding."""

from __future__ import annotations

from collections.abc import Iterable

from maestro.operators.api.abtest import ABTest
from maestro.operators.api.common import API_VERSION
from maestro.operators.api.modeldeployment import ModelDeployment
from maestro.operators.api.trainingrun import TrainingRun
from maestro.operators.core.abtests import SplitPlan, split_plan
from maestro.operators.core.kube import Kube
from maestro.operators.core.verdict import DeploymentFacts


def deployment_facts(
    kube: Kube, namespace: str, names: Iterable[str]
) -> dict[str, DeploymentFacts]:
    """The named ModelDeployments that exist, with the model URI their spec names."""
    facts = {}
    for name in sorted(set(names)):
        obj = kube.get(API_VERSION, ModelDeployment.INFO.plural, namespace, name)
        if obj is not None:
            model = (obj.get("spec") or {}).get("model") or {}
            uri = model.get("uri")
            facts[name] = DeploymentFacts(model_uri=uri if isinstance(uri, str) else None)
    return facts


def existing_training_runs(kube: Kube, namespace: str, names: Iterable[str]) -> set[str]:
    return {
        name
        for name in set(names)
        if kube.get(API_VERSION, TrainingRun.INFO.plural, namespace, name) is not None
    }


def running_split(kube: Kube, namespace: str, deployment: str) -> SplitPlan | None:
    """The split of the oldest Running ABTest on `deployment` (the ABTest controller lets
    only one run per deployment)."""
    plans = [
        plan
        for obj in kube.list(API_VERSION, ABTest.INFO.plural, namespace)
        if (obj.get("spec") or {}).get("deployment") == deployment
        and (plan := split_plan(obj)) is not None
    ]
    return min(plans, key=lambda p: (p.created, p.name)) if plans else None
