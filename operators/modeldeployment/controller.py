"""ModelDeployment controller: gather, decide (modeldeployment.decide), apply
(modeldeployment.render under one field manager), report (status + Events).

Level-triggered from `@kopf.on.event` of the ModelDeployment, from the watch of what it
owns (its Deployments' readiness moves rollouts along; an owned object someone deleted
is applied again), plus in-memory timers for what is time-based: the next canary
analysis or step, a blue/green scale-down, a progress deadline, and the registry poll
that notices an alias (models:/name@alias) moving to another version. No Kopf timers, so
no finalizers: owner references make deletion cascade.

One reconcile reads the ModelDeployment, resolves spec.model.uri in the registry, reads
its owned objects from the watch-fed store (operators.core.object_cache), asks Prometheus
for the canary's or shadow's figures when the decision needs them, then applies what
changed (an object carrying the hash of what would be applied is left alone), deletes
what the plan no longer has and writes status only when it differs. Everything as it
should be: nothing is written.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from maestro.monitoring.tracing import current_traceparent
from maestro.operators.api.common import API_VERSION, Reason
from maestro.operators.api.modeldeployment import (
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)
from maestro.operators.core.approvals import Approvals
from maestro.operators.core.backoff import Backoff
from maestro.operators.core.events import one_line
from maestro.operators.core.failures import DependencyUnavailable
from maestro.operators.core.kube import APPLIED_HASH_ANNOTATION, Kube, Obj, manifest_hash, with_hash
from maestro.operators.core.object_cache import ObjectCache
from maestro.operators.core.registry import (
    ModelNotServable,
    Registry,
    checks_servable,
    is_missing,
)
from maestro.operators.core.registry_cache import RegistryCache
from maestro.operators.core.runtime import Runtime
from maestro.operators.core.status import parse_status
from maestro.operators.core.status_writer import report, report_failure
from maestro.operators.core.verdict import Verdict, invalid_spec
from maestro.operators.core.workqueue import WorkQueue
from maestro.operators.modeldeployment.abtest_split import gather_split
from maestro.operators.modeldeployment.approval import unapproved
from maestro.operators.modeldeployment.decide import (
    PROMOTE_ANNOTATION,
    Decision,
    Inputs,
    concrete_uri,
    decide,
    load_failure,
    needs_resolution,
    not_configured,
    revision_facts,
)
from maestro.operators.modeldeployment.figures import read_figures
from maestro.operators.modeldeployment.render import (
    LABEL_REVISION,
    DeploymentIds,
    ServingSettings,
    TraceContexts,
    owned_kinds,
    owner_label,
    pods_selector,
    render,
    selector,
    service_url,
    stale,
)
from maestro.operators.modeldeployment.vault_access import VaultGate

PLURAL = ModelDeployment.INFO.plural
# A deployment whose pods cannot get their secrets yet is looked at again this often.
SECRETS_RECHECK_SECONDS = 10.0
# URIs the serving pods (and the operator, for aliases) resolve through MLflow.
REGISTRY_SCHEMES = ("models:/", "runs:/")
KIND = ModelDeployment.INFO.kind
log = logging.getLogger(__name__)


@dataclass
class Controller:
    """ModelDeployment reconciliation, shared by its own and its Deployments' events."""

    runtime: Runtime
    settings: ServingSettings = field(init=False)
    queue: WorkQueue = field(init=False)
    _registry: Registry | None = None
    _registry_cache: RegistryCache | None = None
    _servable_cache: RegistryCache | None = None
    _approvals: Approvals | None = None
    # Each deployment's Vault access (spec.secrets), through the operator's session.
    vault: VaultGate = field(init=False)
    # When each deployment's rollout asks Prometheus again after a failed query.
    analysis_backoff: Backoff = field(default_factory=Backoff)
    # The owned objects, from watches (started with the operator; None: LIST each time).
    cache: ObjectCache | None = None

    def __post_init__(self) -> None:
        self.settings = ServingSettings.from_config(self.runtime.config)
        self.queue = self.runtime.queue(KIND, self.reconcile)
        self.vault = VaultGate(self.runtime.config.vault)

    @property
    def kube(self) -> Kube:
        return self.runtime.kube

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(self.runtime.config.mlflow_tracking_uri or "")
        return self._registry

    @property
    def servable_cache(self) -> RegistryCache:
        """Whether a registry version or run holds a servable model: versions do not
        change, so the answer is kept long; a missing one is asked again with back-off."""
        if self._servable_cache is None:
            registry = self.registry

            def check(uri: str) -> None:
                registry.servable(uri)

            self._servable_cache = RegistryCache(
                resolve=check,
                is_missing=is_missing,
                interval=max(300.0, self.runtime.config.registry_poll_interval),
                key_of=lambda uri: ("servable", uri) if checks_servable(uri) else None,
                reason_of=lambda err: (
                    Reason.MODEL_NOT_SERVABLE
                    if isinstance(err, ModelNotServable)
                    else Reason.MODEL_NOT_FOUND
                ),
            )
        return self._servable_cache

    @property
    def registry_cache(self) -> RegistryCache:
        if self._registry_cache is None:
            self._registry_cache = RegistryCache(
                resolve=self.registry.resolve_model_version,
                is_missing=is_missing,
                interval=self.runtime.config.registry_poll_interval,
            )
        return self._registry_cache

    @property
    def approvals(self) -> Approvals | None:
        """Approved alias moves (None: the operator has no audit database)."""
        url = self.runtime.config.audit_database_url
        if url is not None and self._approvals is None:
            self._approvals = Approvals(
                url.get_secret_value(), ttl=self.runtime.config.registry_poll_interval
            )
        return self._approvals

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
        self.model_missing = False
        # Why spec.model.uri cannot be rolled out, and when the registry is asked again.
        self.model_reason = Reason.MODEL_NOT_FOUND
        self.recheck_after: float | None = None

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
        if model_uri is not None and spec.model.require_approval:
            model_uri, model_error = self.approved(spec.model.uri, model_uri)
        if model_uri is not None and spec.secrets:
            model_uri, model_error = self.secrets_ready(spec, model_uri)
        self.model_missing = model_uri is None
        live = self.live_objects()
        revisions = {
            str(dep["metadata"]["labels"][LABEL_REVISION]): revision_facts(dep)
            for dep in live
            if dep["kind"] == "Deployment" and LABEL_REVISION in dep["metadata"]["labels"]
        }
        figures = read_figures(
            self.c.runtime.prometheus,
            self.c.analysis_backoff,
            self.ids,
            spec,
            status,
            now,
            lambda message: self.emit("Warning", "AnalysisUnavailable", message),
        )
        inputs = Inputs(
            spec=spec,
            status=status,
            model_uri=model_uri,
            now=now,
            revisions=revisions,
            analysis=figures.canary,
            shadow=figures.shadow,
            analysis_error=figures.error,
            analysis_retry_at=figures.retry_at,
            approved_revision=self.annotations.get(PROMOTE_ANNOTATION),
            model_error=model_error,
            model_reason=self.model_reason,
            load_failures=self.load_failures(revisions),
        )
        decision = decide(inputs)
        split, challenger_ip = gather_split(self.c.kube, self.ids, live, revisions)
        # This reconcile's trace context goes to the revisions it creates (see TraceContexts).
        traces = TraceContexts.gather(live, current_traceparent())
        desired = render(
            self.ids, spec, decision.plan, self.c.settings, split, challenger_ip, traces
        )
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
        # Ready keeps the last good state (what runs still runs); Synced says why the
        # operator cannot act now. The retry's back-off is logged by the queue.
        report_failure(
            self.c.kube,
            self.obj,
            ModelDeploymentStatus,
            self.status_raw,
            err,
            self.c.runtime.clock,
            self.c.runtime.post_event,
        )

    # --- gather ------------------------------------------------------------------------

    def resolve(self, uri: str) -> tuple[str | None, str]:
        """spec.model.uri with an alias or `latest` pinned to the version it means now, and
        a registry version or run checked to hold a model `maestro serve` can load, before
        anything is rolled out for it (the reason of a problem goes to self.model_reason).
        MLflow unreachable raises RegistryUnavailable: retried with back-off, Ready unchanged."""
        try:
            return self._resolve(uri)
        except Exception as err:
            raise DependencyUnavailable(
                Reason.REGISTRY_UNAVAILABLE, f"model registry: {one_line(err)}"
            ) from err

    def _resolve(self, uri: str) -> tuple[str | None, str]:
        found = self.c.registry_cache.lookup(uri)
        if found.missing:
            self.recheck_after = self.c.registry_cache.next_check(uri)
            return None, found.missing
        concrete = uri
        if found.version is not None and needs_resolution(uri):
            concrete = concrete_uri(uri, found.version)
        checked = self.c.servable_cache.lookup(concrete)
        if checked.missing:
            self.model_reason = Reason(checked.reason or Reason.MODEL_NOT_FOUND)
            self.recheck_after = self.c.servable_cache.next_check(concrete)
            return None, checked.missing
        return concrete, ""

    def approved(self, uri: str, concrete: str) -> tuple[str | None, str]:
        """`concrete` if the move of uri's alias to it was approved; else None and why
        (the reason goes to self.model_reason, and the audit log is asked again later)."""
        problem = unapproved(uri, concrete, self.c.approvals)
        if problem is None:
            return concrete, ""
        self.model_reason = Reason.AWAITING_APPROVAL
        self.recheck_after = self.c.runtime.config.registry_poll_interval
        return None, problem

    def secrets_ready(self, spec: ModelDeploymentSpec, concrete: str) -> tuple[str | None, str]:
        """`concrete` once the deployment's Vault access is written and its secrets exist;
        else None and why (its pods could not start), asked again soon."""
        problem = self.c.vault.problem(self.ids, spec)
        if problem is None:
            return concrete, ""
        self.model_reason = problem.reason
        self.recheck_after = SECRETS_RECHECK_SECONDS
        return None, problem.message

    def load_failures(self, revisions: Mapping[str, Any]) -> dict[str, str]:
        """What the serving pods of revisions short of ready replicas say about loading
        their model (their containers' termination messages)."""
        waiting = [
            name for name, facts in revisions.items() if facts.ready_replicas < facts.replicas
        ]
        if not waiting:
            return {}
        found: dict[str, str] = {}
        selector = ",".join(f"{k}={v}" for k, v in sorted(pods_selector(self.ids).items()))
        for pod in self.c.kube.list("v1", "pods", self.ids.namespace, selector):
            revision = (pod["metadata"].get("labels") or {}).get(LABEL_REVISION)
            message = load_failure(pod)
            if revision in waiting and message and revision not in found:
                found[revision] = message
        return found

    def live_objects(self) -> list[Obj]:
        cache = self.c.cache
        found: list[Obj] = []
        for kind in owned_kinds(self.c.settings):
            if cache is not None:
                found += cache.owned(kind, self.ids.namespace, owner_label(self.ids))
                continue
            for item in self.c.kube.list(
                kind.api_version, kind.plural, self.ids.namespace, selector(self.ids)
            ):
                found.append({**item, "apiVersion": kind.api_version, "kind": kind.kind})
        return found

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
                answer = self.c.kube.apply(with_hash(manifest))
                if self.c.cache is not None:
                    self.c.cache.applied(answer)
        for obj in stale(desired, live):
            name = obj["metadata"]["name"]
            self.c.kube.delete(obj["apiVersion"], obj["kind"], self.ids.namespace, name)
            if self.c.cache is not None:
                self.c.cache.deleted(obj["apiVersion"], obj["kind"], self.ids.namespace, name)

    def write(self, verdict: Verdict, extra: Mapping[str, Any]) -> None:
        self.status_raw = report(
            self.c.kube,
            self.obj,
            ModelDeploymentStatus,
            self.status_raw,
            verdict,
            dict(extra),
            self.c.runtime.clock,
            self.c.runtime.post_event,
        )

    def emit(self, type_: str, reason: str, message: str) -> None:
        self.c.runtime.post_event(self.obj, type_, reason, message)

    def requeue(self, spec: ModelDeploymentSpec, decision: Decision) -> None:
        delays = [decision.requeue_after] if decision.requeue_after is not None else []
        uri = spec.model.uri
        # The registry does not always call back: an alias move, or a missing model
        # registered later, is noticed by asking again once the shared answer is due.
        due = self.recheck_after if self.model_missing else None
        if due is None and needs_resolution(uri):
            due = self.c.registry_cache.next_check(uri)
        if due is not None:
            delays.append(max(due, 1.0))
        if delays:
            self.c.queue.requeue(self.ids.namespace, self.ids.name, max(0.5, min(delays)))
