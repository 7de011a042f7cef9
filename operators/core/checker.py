"""The controller of a kind whose reconcile is only "check the spec and its references,
report": parse the spec, gather what the kind's pure `decide` needs, decide, write status
once. ABTest and DriftCheck use it until their own controllers create workloads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from maestro.operators.api.common import API_VERSION, Resource, StatusBase
from maestro.operators.core.events import emit, one_line
from maestro.operators.core.kube import Kube, Obj
from maestro.operators.core.runtime import Runtime
from maestro.operators.core.status_writer import report
from maestro.operators.core.verdict import Verdict, invalid_spec
from maestro.operators.core.workqueue import WorkQueue

SpecT = TypeVar("SpecT", bound=BaseModel)
# Gather and decide: (the parsed spec, the API client, the object's namespace) -> Verdict.
Decider = Callable[[SpecT, Kube, str], Verdict]


@dataclass
class CheckingController(Generic[SpecT]):
    runtime: Runtime
    resource: type[Resource]
    spec_model: type[SpecT]
    status_model: type[StatusBase]
    decide: Decider[SpecT]
    queue: WorkQueue = field(init=False)

    def __post_init__(self) -> None:
        self.queue = WorkQueue(self.resource.INFO.kind, self.reconcile)

    def reconcile(self, namespace: str, name: str) -> None:
        kube = self.runtime.kube
        plural = self.resource.INFO.plural
        self.queue.process(
            namespace,
            name,
            lambda: kube.get(API_VERSION, plural, namespace, name),
            lambda obj: _Step(self, obj),
        )


class _Step(Generic[SpecT]):
    def __init__(self, controller: CheckingController[SpecT], obj: Obj) -> None:
        self.c = controller
        self.obj = obj

    def run(self) -> None:
        c = self.c
        try:
            spec = c.spec_model.model_validate(self.obj.get("spec") or {})
        except ValidationError as err:
            verdict = invalid_spec(c.resource.INFO.kind, err)
        else:
            verdict = c.decide(spec, c.runtime.kube, self.obj["metadata"]["namespace"])
        stored: dict[str, Any] = dict(self.obj.get("status") or {})
        report(c.runtime.kube, self.obj, c.status_model, stored, verdict, None, c.runtime.clock)

    def report_error(self, err: Exception) -> None:
        # Status keeps the last good state; the retry's back-off is logged by the queue.
        emit(self.obj, "Warning", "ReconcileError", one_line(err))
