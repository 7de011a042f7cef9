"""ModelDeployment controller: gather, decide (modeldeployment_decisions), apply
(modeldeployment_render under one field manager), report (status + Events).

Level-triggered from `@kopf.on.event` of the ModelDeployment and of the Deployments it
owns (their readiness moves rollouts along), plus in-memory timers for what is
time-based: the next canary analysis or step, a blue/green scale-down, a progress deadline,
and the registry poll that notices an alias (models:/name@alias) moving to another version. No Kopf
timers, so no finalizers: owner references make deletion cascade.

One reconcile reads the ModelDeployment, resolves spec.model.uri in the registry, lists
its owned objects, asks Prometheus for the canary's or shadow's figures when the decision
needs them, then applies what changed (an object carrying the hash of what would be
applied is left alone), deletes what the plan no longer has and writes status only when
it differs. Everything as it should be: nothing is written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import kopf
from pydantic import ValidationError

from maestro.operators import abtest, driftcheck
from maestro.operators.analysis import (
    PrometheusClient,
    PrometheusQueryError,
    PrometheusUnavailable,
    RevisionSelector,
)
from maestro.operators.api.common import API_VERSION, GROUP, VERSION, Reason
from maestro.operators.api.modeldeployment import (
    DeploymentPhase,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)
from maestro.operators.controller import (
    APPLIED_HASH_ANNOTATION,
    Kube,
    Obj,
    WorkQueue,
    manifest_hash,
    with_hash,
    write_status,
)
from maestro.operators.decisions import Verdict, invalid_spec
from maestro.operators.handlers import (
    MODELDEPLOYMENTS_INDEX,
    Runtime,
    abtest_refs,
    dependents,
    deployments_index,
    driftcheck_refs,
    emit_transition,
    training_runs_index,
)
from maestro.operators.modeldeployment_decisions import (
    PROMOTE_ANNOTATION,
    Decision,
    Inputs,
    canary_query,
    concrete_uri,
    decide,
    needs_resolution,
    revision_facts,
    shadow_query,
)
from maestro.operators.modeldeployment_render import (
    LABEL_DEPLOYMENT,
    LABEL_REVISION,
    DeploymentIds,
    ServingSettings,
    owned_kinds,
    render,
    selector,
    service_url,
    stale,
)
from maestro.operators.reconcile import parse_status

if TYPE_CHECKING:  # imported lazily: it is the module that loads MLflow
    from maestro.operators.tracking import Tracking

PLURAL = ModelDeployment.INFO.plural
# URIs the serving pods (and the operator, for aliases) resolve through MLflow.
REGISTRY_SCHEMES = ("models:/", "runs:/")
KIND = ModelDeployment.INFO.kind
log = logging.getLogger(__name__)


def _model_uri(spec: kopf.Spec | Mapping[str, Any]) -> str | None:
    model = spec.get("model")
    uri = model.get("uri") if isinstance(model, Mapping) else None
    return uri if isinstance(uri, str) else None


@dataclass
class Controller:
    """ModelDeployment reconciliation, shared by its own and its Deployments' events."""

    runtime: Runtime
    settings: ServingSettings = field(init=False)
    queue: WorkQueue = field(init=False)
    _kube: Kube | None = None
    _tracking: Tracking | None = None
    _prometheus: PrometheusClient | None = None

    def __post_init__(self) -> None:
        self.settings = ServingSettings.from_config(self.runtime.config)
        self.queue = WorkQueue(KIND, self.reconcile)

    @property
    def kube(self) -> Kube:
        if self._kube is None:
            self._kube = Kube(self.runtime.api_client, self.runtime.request_timeout)
        return self._kube

    @property
    def tracking(self) -> Tracking:
        if self._tracking is None:
            from maestro.operators.tracking import Tracking

            self._tracking = Tracking(self.runtime.config.mlflow_tracking_uri or "", None)
        return self._tracking

    @property
    def prometheus(self) -> PrometheusClient | None:
        url = self.runtime.config.prometheus_url
        if url and self._prometheus is None:
            self._prometheus = PrometheusClient(url, timeout=self.runtime.request_timeout)
        return self._prometheus

    def reconcile(self, namespace: str, name: str) -> None:
        self.queue.process(
            namespace,
            name,
            lambda: self.kube.get(API_VERSION, PLURAL, namespace, name),
            lambda obj: _Step(self, obj),
        )


class _Step:
    """One reconcile of one ModelDeployment."""

    def __init__(self, controller: Controller, obj: Obj) -> None:
        self.c = controller
        self.obj = obj
        meta = obj["metadata"]
        self.ids = DeploymentIds(namespace=meta["namespace"], name=meta["name"], uid=meta["uid"])
        self.generation: int | None = meta.get("generation")
        self.annotations: Mapping[str, str] = meta.get("annotations") or {}
        self.status_raw: dict[str, Any] = dict(obj.get("status") or {})

    def run(self) -> None:
        try:
            spec = ModelDeploymentSpec.model_validate(self.obj.get("spec") or {})
        except ValidationError as err:
            self.write(invalid_spec(KIND, err), {})
            return
        if spec.model.uri.startswith(REGISTRY_SCHEMES) and not self.c.settings.tracking_uri:
            self.write(not_configured(spec.model.uri), {})
            return
        status = parse_status(ModelDeploymentStatus, self.status_raw)
        assert isinstance(status, ModelDeploymentStatus)
        now = self.c.runtime.clock()
        model_uri, model_error = self.resolve(spec.model.uri)
        live = self.live_objects()
        revisions = {
            str(dep["metadata"]["labels"][LABEL_REVISION]): revision_facts(dep)
            for dep in live
            if dep["kind"] == "Deployment" and LABEL_REVISION in dep["metadata"]["labels"]
        }
        inputs = Inputs(
            spec=spec,
            status=status,
            model_uri=model_uri,
            now=now,
            revisions=revisions,
            analysis=self.figures(spec, status, now),
            shadow=self.shadow_figures(spec, status),
            approved_revision=self.annotations.get(PROMOTE_ANNOTATION),
            model_error=model_error,
        )
        decision = decide(inputs)
        desired = render(self.ids, spec, decision.plan, self.c.settings)
        self.apply(desired, live)
        # decision.status carries readyReplicas: the ready pods of the revisions that take
        # traffic, not those of a preview, a shadow or a kept previous revision.
        self.write(
            decision.verdict, {**decision.status, "url": service_url(self.ids, self.c.settings)}
        )
        for event in decision.events:
            self.emit(event.type, event.reason, event.message)
        self.requeue(spec, decision)

    def report_error(self, err: Exception) -> None:
        # Status keeps the last good state; the retry's back-off is logged by the queue.
        self.emit("Warning", "ReconcileError", _one_line(err))

    # --- gather ------------------------------------------------------------------------

    def resolve(self, uri: str) -> tuple[str | None, str]:
        """spec.model.uri with an alias or `latest` pinned to the version it means now."""
        if not needs_resolution(uri):
            return uri, ""
        try:
            version = self.c.tracking.resolve_model_version(uri)
        except Exception as err:
            if _is_missing(err):
                return None, _one_line(err)
            raise  # MLflow unreachable: retried with back-off, status unchanged
        return (concrete_uri(uri, version) if version else uri), ""

    def live_objects(self) -> list[Obj]:
        found: list[Obj] = []
        for kind in owned_kinds(self.c.settings):
            for item in self.c.kube.list(
                kind.api_version, kind.plural, self.ids.namespace, selector(self.ids)
            ):
                found.append({**item, "apiVersion": kind.api_version, "kind": kind.kind})
        return found

    def figures(
        self,
        spec: ModelDeploymentSpec,
        status: ModelDeploymentStatus,
        now: datetime,
    ) -> Any:
        query = canary_query(spec, status, now)
        if query is None:
            return None
        return self.query(
            lambda prom: prom.revision_metrics(self.selector(query.revision), query.window)
        )

    def shadow_figures(self, spec: ModelDeploymentSpec, status: ModelDeploymentStatus) -> Any:
        query = shadow_query(spec, status)
        if query is None:
            return None
        return self.query(
            lambda prom: prom.shadow_metrics(self.selector(query.revision), query.window)
        )

    def selector(self, revision: str) -> RevisionSelector:
        return RevisionSelector(
            deployment=self.ids.name, revision=revision, namespace=self.ids.namespace
        )

    def query(self, ask: Any) -> Any:
        prom = self.c.prometheus
        if prom is None:
            self.emit(
                "Warning",
                "AnalysisUnavailable",
                "No Prometheus configured (MAESTRO_PROMETHEUS_URL): the rollout waits.",
            )
            return None
        try:
            return ask(prom)
        except (PrometheusUnavailable, PrometheusQueryError) as err:
            self.emit("Warning", "AnalysisUnavailable", _one_line(err))
            return None

    # --- apply and report --------------------------------------------------------------

    def apply(self, desired: list[Obj], live: list[Obj]) -> None:
        hashes = {
            (o["kind"], o["metadata"]["name"]): (o["metadata"].get("annotations") or {}).get(
                APPLIED_HASH_ANNOTATION
            )
            for o in live
        }
        for manifest in desired:
            key = (manifest["kind"], manifest["metadata"]["name"])
            if hashes.get(key) != manifest_hash(manifest):
                self.c.kube.apply(with_hash(manifest))
        for obj in stale(desired, live):
            meta = obj["metadata"]
            self.c.kube.delete(obj["apiVersion"], obj["kind"], self.ids.namespace, meta["name"])

    def write(self, verdict: Verdict, extra: Mapping[str, Any]) -> None:
        fields = dict(extra)
        self.status_raw, transition = write_status(
            self.c.kube,
            self.obj,
            ModelDeploymentStatus,
            self.status_raw,
            verdict,
            fields,
            self.c.runtime.clock,
        )
        if transition is not None:
            emit_transition(self.obj, transition)

    def emit(self, type_: str, reason: str, message: str) -> None:
        kopf.event(
            kopf.Body(cast(kopf.RawBody, self.obj)), type=type_, reason=reason, message=message
        )

    def requeue(self, spec: ModelDeploymentSpec, decision: Decision) -> None:
        delays = [decision.requeue_after] if decision.requeue_after is not None else []
        if needs_resolution(spec.model.uri):
            # The registry does not call back: an alias move is noticed by asking again.
            delays.append(self.c.runtime.config.registry_poll_interval)
        if delays:
            self.c.queue.requeue(self.ids.namespace, self.ids.name, max(0.5, min(delays)))


def not_configured(uri: str) -> Verdict:
    return Verdict(
        ready=False,
        reason=Reason.NOT_CONFIGURED,
        message=(
            f"spec.model.uri {uri} needs MLflow, and the operator has no tracking URI: set"
            " MAESTRO_MLFLOW_TRACKING_URI in its Deployment."
        ),
        phase=DeploymentPhase.PENDING,
    )


def _is_missing(err: Exception) -> bool:
    from maestro.operators.tracking import ModelNotFound

    if isinstance(err, ModelNotFound):
        return True
    code = getattr(err, "error_code", None)
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


def _one_line(err: Exception) -> str:
    return (" ".join(str(err).split()) or type(err).__name__)[:500]


def _owner_name(body: Mapping[str, Any]) -> str | None:
    labels = (body.get("metadata") or {}).get("labels") or {}
    for owner in (body.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller") and owner.get("kind") == KIND:
            return str(owner["name"])
    return labels.get(LABEL_DEPLOYMENT)


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    controller = Controller(runtime=runtime)

    @kopf.on.startup(registry=registry)
    async def modeldeployment_startup(**_: Any) -> None:
        controller.queue.loop = asyncio.get_running_loop()

    @kopf.index(GROUP, VERSION, PLURAL, id=MODELDEPLOYMENTS_INDEX, registry=registry)
    def modeldeployments(
        *, namespace: str | None, name: str, spec: kopf.Spec, **_: Any
    ) -> dict[tuple[str, str], str | None]:
        return {(namespace or "", name): _model_uri(spec)}

    @kopf.on.event(GROUP, VERSION, PLURAL, id="modeldeployment", registry=registry)
    def modeldeployment_event(
        *,
        type: str,
        namespace: str | None,
        name: str,
        spec: kopf.Spec,
        **kwargs: Any,
    ) -> None:
        if type == "DELETED":
            controller.queue.forget(namespace or "", name)
        else:
            controller.reconcile(namespace or "", name)
        # Kopf updated the index before calling us, so dependents see this event's state:
        # an ABTest waiting with DeploymentNotFound turns Ready now, and back when deleted.
        key = (namespace or "", KIND, name)
        if not runtime.referenced_changed(key, type, _model_uri(spec)):
            return
        deployments = deployments_index(kwargs)
        for snap in dependents(abtest_refs(kwargs), key):
            abtest.recheck(snap, deployments, runtime)
        for snap in dependents(driftcheck_refs(kwargs), key):
            driftcheck.recheck(snap, deployments, training_runs_index(kwargs), runtime)

    @kopf.on.event(
        "apps",
        "v1",
        "deployments",
        id="modeldeployment-deployments",
        labels={LABEL_DEPLOYMENT: kopf.PRESENT},
        registry=registry,
    )
    def deployment_event(*, type: str, body: kopf.Body, namespace: str | None, **_: Any) -> None:
        owner = _owner_name(body)
        if owner is None or type == "DELETED":
            return  # deleted by a reconcile (pruned) or with its ModelDeployment
        controller.reconcile(namespace or "", owner)
