"""What the TrainingRun controller reads: its runs, their jobs and pods through the API,
and which run controls a job."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from maestro.operators.api.common import API_VERSION, GROUP
from maestro.operators.api.trainingrun import TrainingRun
from maestro.operators.core import kube as core_kube
from maestro.operators.core.kube import Obj
from maestro.operators.core.objects import Kind
from maestro.operators.trainingrun.decide import RunFacts
from maestro.operators.trainingrun.render import JobKind

PLURAL = TrainingRun.INFO.plural
# The queue's view of the namespaces' runs comes from a watch of this kind.
RUN_KIND = Kind(API_VERSION, TrainingRun.INFO.kind, PLURAL)


class Kube(core_kube.Kube):
    """The generic client plus the TrainingRun-specific reads and writes."""

    def get_run(self, namespace: str, name: str) -> Obj | None:
        return self.get(API_VERSION, PLURAL, namespace, name)

    def list_runs(self, namespace: str) -> list[Obj]:
        return self.list(API_VERSION, PLURAL, namespace)

    def get_job(self, kind: JobKind, namespace: str, name: str) -> Obj | None:
        return self.get(kind.api_version, kind.plural, namespace, name)

    def list_pods(self, namespace: str, selector: str) -> list[Obj]:
        return self.list("v1", "pods", namespace, selector)


def run_facts(obj: Mapping[str, Any]) -> RunFacts:
    meta, status = obj["metadata"], obj.get("status") or {}
    return RunFacts(
        name=meta["name"],
        created=str(meta.get("creationTimestamp") or ""),
        phase=status.get("phase"),
        started=bool(status.get("mlflowRunId")),
        uid=str(meta.get("uid") or ""),
    )


def controlling_run(body: Mapping[str, Any]) -> str | None:
    """Name of the TrainingRun that controls this job, if one does."""
    for owner in (body.get("metadata") or {}).get("ownerReferences") or []:
        if (
            owner.get("controller")
            and owner.get("kind") == TrainingRun.INFO.kind
            and str(owner.get("apiVersion", "")).startswith(f"{GROUP}/")
        ):
            return str(owner["name"])
    return None
