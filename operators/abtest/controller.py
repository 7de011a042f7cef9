"""ABTest controller: gather (the ModelDeployment under test, the challenger in the registry,
other tests, the per-variant figures in Prometheus), decide (abtest.decide), act (promote:
move the alias the ModelDeployment serves, recorded in the audit log as a promotion), report
(status, Events). The split itself is rendered by the ModelDeployment's controller from
this test's status (operators.core.abtests); nothing here creates a workload.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from maestro.operators.abtest.decide import DeploymentView, Inputs, Outcome, decide, not_promoted
from maestro.operators.abtest.figures import read_figures
from maestro.operators.abtest.metrics import ABTestStatusMetrics
from maestro.operators.abtest.promote import PromotionImpossible, promote
from maestro.operators.api.abtest import ABTest, ABTestPhase, ABTestSpec, ABTestStatus
from maestro.operators.api.common import API_VERSION
from maestro.operators.api.modeldeployment import ModelDeployment
from maestro.operators.core.abtests import split_plan
from maestro.operators.core.events import one_line
from maestro.operators.core.kube import Kube, Obj
from maestro.operators.core.registry import ModelNotServable, Registry, is_missing
from maestro.operators.core.runtime import Runtime
from maestro.operators.core.status import parse_status
from maestro.operators.core.status_writer import report, report_failure
from maestro.operators.core.verdict import invalid_spec
from maestro.operators.core.workqueue import WorkQueue
from maestro.serving.uris import parse_models_uri

log = logging.getLogger(__name__)
PLURAL = ABTest.INFO.plural


@dataclass
class Controller:
    runtime: Runtime
    queue: WorkQueue = field(init=False)
    metrics: ABTestStatusMetrics = field(init=False)
    _registry: Registry | None = None

    def __post_init__(self) -> None:
        self.queue = self.runtime.queue(ABTest.INFO.kind, self.reconcile)
        self.metrics = ABTestStatusMetrics(self.runtime.metrics)

    @property
    def kube(self) -> Kube:
        return self.runtime.kube

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(self.runtime.config.mlflow_tracking_uri or "")
        return self._registry

    def reconcile(self, namespace: str, name: str) -> None:
        self.queue.process(
            namespace,
            name,
            lambda: self.kube.get(API_VERSION, PLURAL, namespace, name),
            lambda obj: _Step(self, obj),
        )


class _Step:
    def __init__(self, controller: Controller, obj: Obj) -> None:
        self.c, self.obj = controller, obj
        meta = obj["metadata"]
        self.namespace, self.name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.stored: dict[str, Any] = dict(obj.get("status") or {})

    def run(self) -> None:
        try:
            spec = ABTestSpec.model_validate(self.obj.get("spec") or {})
        except ValidationError as err:
            self.write(Outcome(invalid_spec(ABTest.INFO.kind, err), requeue_after=None))
            return
        status = parse_status(ABTestStatus, self.stored)
        assert isinstance(status, ABTestStatus)
        md = self.c.kube.get(
            API_VERSION, ModelDeployment.INFO.plural, self.namespace, spec.deployment
        )
        inputs = self.gather(spec, status, md)
        outcome = decide(inputs)
        if outcome.promote and md is not None:
            try:
                done = promote(self.c.runtime.config, self.obj, md, inputs.challenger_uri or "")
                outcome.events.append(("Normal", outcome.verdict.reason, done))
            except PromotionImpossible as err:
                outcome = not_promoted(outcome, str(err))
        self.write(outcome)

    def gather(self, spec: ABTestSpec, status: ABTestStatus, md: Obj | None) -> Inputs:
        now = self.c.runtime.clock()
        running = status.phase == ABTestPhase.RUNNING
        registry = spec.challenger.model.uri.startswith(("models:/", "runs:/"))
        missing = registry and not self.c.runtime.config.mlflow_tracking_uri
        if running or missing or md is None:
            uri, error = status.challenger_model_uri, ""
        else:
            uri, error = self.resolve(spec)
        ready = running and self.challenger_ready(spec)
        plan = split_plan(self.obj)
        figures = None
        if ready and plan is not None and md is not None and self.c.runtime.prometheus is not None:
            figures = read_figures(self.c.runtime.prometheus, self.namespace, plan, md, status, now)
        return Inputs(
            name=self.name,
            uid=self.uid,
            spec=spec,
            status=status,
            now=now,
            deployment=view(md),
            challenger_uri=uri,
            challenger_error=error,
            other_test=None if running else self.other_test(spec),
            champion_spec_uri=((md or {}).get("spec") or {}).get("model", {}).get("uri"),
            registry_missing=missing,
            challenger_ready=ready,
            figures=figures,
        )

    def resolve(self, spec: ABTestSpec) -> tuple[str | None, str]:
        """The challenger pinned to the version it names now, checked to hold a model
        `maestro serve` can load (as a ModelDeployment checks its own) before anything is
        started for it; None and why otherwise."""
        uri = spec.challenger.model.uri
        try:
            version = self.c.registry.resolve_model_version(uri)
            ref = parse_models_uri(uri)
            if version is not None and ref is not None and ref.name:
                uri = f"models:/{ref.name}/{version}"
            self.c.registry.servable(uri)
        except Exception as err:
            if is_missing(err) or isinstance(err, ModelNotServable):
                return None, one_line(err)
            raise
        return uri, ""

    def other_test(self, spec: ABTestSpec) -> str | None:
        for obj in self.c.kube.list(API_VERSION, PLURAL, self.namespace):
            meta = obj["metadata"]
            same = (obj.get("spec") or {}).get("deployment") == spec.deployment
            if same and meta["name"] != self.name and split_plan(obj) is not None:
                return str(meta["name"])
        return None

    def challenger_ready(self, spec: ABTestSpec) -> bool:
        """The challenger revision of this test has a ready pod (the ModelDeployment's
        controller then lets the champion's pods send it traffic)."""
        plan = split_plan(self.obj)
        if plan is None:
            return False
        selector = (
            f"mlops.maestro.dev/deployment={spec.deployment},"
            f"mlops.maestro.dev/revision={plan.revision}"
        )
        for dep in self.c.kube.list("apps/v1", "deployments", self.namespace, selector):
            if int((dep.get("status") or {}).get("readyReplicas") or 0) >= 1:
                return True
        return False

    def write(self, outcome: Outcome) -> None:
        self.stored = report(
            self.c.kube,
            self.obj,
            ABTestStatus,
            self.stored,
            outcome.verdict,
            outcome.status,
            self.c.runtime.clock,
            self.c.runtime.post_event,
        )
        deployment = str((self.obj.get("spec") or {}).get("deployment") or "")
        self.c.metrics.show(self.namespace, self.name, deployment, self.stored)
        for kind, reason, message in outcome.events:
            self.c.runtime.post_event(self.obj, kind, reason.value, message)
        if outcome.requeue_after is not None:
            self.c.queue.requeue(self.namespace, self.name, outcome.requeue_after)

    def report_error(self, err: Exception) -> None:
        report_failure(
            self.c.kube,
            self.obj,
            ABTestStatus,
            self.stored,
            err,
            self.c.runtime.clock,
            self.c.runtime.post_event,
        )


def view(md: Obj | None) -> DeploymentView | None:
    if md is None:
        return None
    status = md.get("status") or {}
    uri = ((md.get("spec") or {}).get("model") or {}).get("uri") or ""
    ref = parse_models_uri(uri)
    return DeploymentView(
        phase=status.get("phase"),
        stable_uri=status.get("stableModelUri"),
        rolling_out=bool(status.get("canaryRevision")),
        alias_uri=bool(ref is not None and ref.alias),
    )


def build(runtime: Runtime) -> Controller:
    return Controller(runtime)
