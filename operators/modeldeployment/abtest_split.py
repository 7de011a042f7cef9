"""The running ABTest on a ModelDeployment, as its controller gathers it: the split the test
wants, and the challenger Service's ClusterIP once the challenger has a ready pod (before
that the champion's pods do not send it anything)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from maestro.operators.core.abtests import SplitPlan
from maestro.operators.core.gather import running_split
from maestro.operators.core.kube import Kube, Obj
from maestro.operators.modeldeployment.decide import RevisionFacts
from maestro.operators.modeldeployment.render import DeploymentIds, challenger_service_name


def gather_split(
    kube: Kube, ids: DeploymentIds, live: Iterable[Obj], revisions: Mapping[str, RevisionFacts]
) -> tuple[SplitPlan | None, str | None]:
    split = running_split(kube, ids.namespace, ids.name)
    if split is None:
        return None, None
    facts = revisions.get(split.revision)
    if facts is None or facts.ready_replicas < 1:
        return split, None
    name = challenger_service_name(ids, split)
    service = next(
        (o for o in live if o["kind"] == "Service" and o["metadata"]["name"] == name), None
    )
    ip = ((service or {}).get("spec") or {}).get("clusterIP")
    return split, ip if isinstance(ip, str) and ip != "None" else None
