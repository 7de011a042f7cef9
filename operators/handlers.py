"""Kopf glue shared by the per-kind handler modules: gather, decide, report.

Every kind is reconciled level-triggered from `@kopf.on.event`: each watch event of the
object recomputes its status from the spec and from in-memory indexes of the objects it
references, and writes only when the result differs from what is stored. This needs no
finalizers (timers and daemons would add one, and a finalizer blocks namespace deletion
whenever the operator is down) and no progress annotations on users' objects.

Objects that reference others (ABTest -> ModelDeployment, DriftCheck -> ModelDeployment
and TrainingRun) are re-checked when the referenced object appears, changes or goes away:
the referenced kind's event handler looks up its dependents in an index and patches their
status through the API, since Kopf's `patch` only reaches the object being handled.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import kopf
from pydantic import BaseModel, ValidationError

from maestro.operators.api.common import GROUP, VERSION, Condition, ConditionStatus, Resource
from maestro.operators.conditions import Clock
from maestro.operators.decisions import DeploymentFacts, Verdict, invalid_spec
from maestro.operators.reconcile import StatusPlan, plan_status
from maestro.operators.settings import OperatorConfig

SpecT = TypeVar("SpecT", bound=BaseModel)
# (namespace, kind, name) of a referenced object.
RefKey = tuple[str, str, str]
Snapshot = dict[str, Any]

# Index ids double as the keyword names Kopf passes the indexes under.
MODELDEPLOYMENTS_INDEX = "modeldeployments_index"
TRAININGRUNS_INDEX = "trainingruns_index"
ABTEST_REFS_INDEX = "abtest_refs_index"
DRIFTCHECK_REFS_INDEX = "driftcheck_refs_index"

log = logging.getLogger(__name__)
_UNSEEN = object()


DeploymentsIndex = kopf.Index[tuple[str, str], str | None]
TrainingRunsIndex = kopf.Index[tuple[str, str], bool]
RefsIndex = kopf.Index[RefKey, Snapshot]


# Kopf passes indexes as keyword arguments named by index id; its handler protocols only
# admit them through **kwargs, so these accessors give them back their types.
def deployments_index(kwargs: Mapping[str, Any]) -> DeploymentsIndex:
    return cast(DeploymentsIndex, kwargs[MODELDEPLOYMENTS_INDEX])


def training_runs_index(kwargs: Mapping[str, Any]) -> TrainingRunsIndex:
    return cast(TrainingRunsIndex, kwargs[TRAININGRUNS_INDEX])


def abtest_refs(kwargs: Mapping[str, Any]) -> RefsIndex:
    return cast(RefsIndex, kwargs[ABTEST_REFS_INDEX])


def driftcheck_refs(kwargs: Mapping[str, Any]) -> RefsIndex:
    return cast(RefsIndex, kwargs[DRIFTCHECK_REFS_INDEX])


@dataclass
class Runtime:
    """What handlers share, built once per operator run (no module globals)."""

    clock: Clock
    request_timeout: float
    config: OperatorConfig = field(default_factory=OperatorConfig)
    # Created by the startup handler: only fan-out writes to *other* objects need it.
    custom_api: Any = field(default=None)
    # The kubernetes ApiClient behind custom_api, for controllers that own workloads.
    api_client: Any = field(default=None)
    # What dependents last saw of each referenced object, to fan out on real changes only.
    seen: dict[RefKey, object] = field(default_factory=dict)

    def referenced_changed(self, key: RefKey, event_type: str | None, value: object) -> bool:
        """Whether dependents of `key` must be re-checked after this watch event.

        Initial-listing events (type None) only record: every dependent is listed too and
        reconciles itself. Status-only updates of the referenced object change nothing here.
        """
        if event_type == "DELETED":
            self.seen.pop(key, None)
            return True
        previous = self.seen.get(key, _UNSEEN)
        self.seen[key] = value
        return event_type is not None and previous != value


def parse_spec(model: type[SpecT], body: Mapping[str, Any]) -> SpecT:
    return model.model_validate(body.get("spec") or {})


def plan_for(
    kind: type[Resource],
    body: Mapping[str, Any],
    decide: Callable[[Any], Verdict],
    clock: Clock,
) -> StatusPlan:
    spec_model = kind.model_fields["spec"].annotation
    status_model = kind.model_fields["status"].annotation
    assert isinstance(spec_model, type) and issubclass(spec_model, BaseModel)
    assert isinstance(status_model, type)
    try:
        verdict = decide(parse_spec(spec_model, body))
    except ValidationError as err:
        verdict = invalid_spec(kind.INFO.kind, err)
    metadata = body.get("metadata") or {}
    return plan_status(
        status_model,
        body.get("status"),
        verdict,
        generation=metadata.get("generation"),
        clock=clock,
    )


def emit_transition(body: Mapping[str, Any], condition: Condition) -> None:
    # kopf.event rather than kopf.info: settings.posting.level silences kopf.info, and that
    # level is raised so Kopf's own per-handler chatter does not flood the object's Events.
    kopf.event(
        body if isinstance(body, kopf.Body) else kopf.Body(cast(kopf.RawBody, dict(body))),
        # Unknown is work in progress (e.g. a TrainingRun queued or running), not a problem.
        type="Warning" if condition.status == ConditionStatus.FALSE else "Normal",
        reason=condition.reason,
        message=condition.message,
    )


def reconcile_via_patch(
    kind: type[Resource],
    body: kopf.Body,
    patch: kopf.Patch,
    decide: Callable[[Any], Verdict],
    runtime: Runtime,
) -> None:
    plan = plan_for(kind, body, decide, runtime.clock)
    for key, value in plan.patch.items():
        patch.status[key] = value
    if plan.transition is not None:
        emit_transition(body, plan.transition)


def reconcile_via_api(
    kind: type[Resource],
    snapshot: Snapshot,
    decide: Callable[[Any], Verdict],
    runtime: Runtime,
) -> None:
    """Re-check an object this handler is not processing, from its indexed snapshot.

    A snapshot without status has not been reconciled yet: its own event handler is about
    to run (and re-runs on each of its status writes), so it is left to that handler rather
    than racing it and doubling the Event.
    """
    if not snapshot.get("status"):
        return
    plan = plan_for(kind, snapshot, decide, runtime.clock)
    if plan.empty:
        return
    metadata = snapshot["metadata"]
    try:
        runtime.custom_api.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            metadata["namespace"],
            kind.INFO.plural,
            metadata["name"],
            {"status": plan.patch},
            _request_timeout=runtime.request_timeout,
        )
    except Exception as err:
        # The object's own event handler converges it on its next event; log, don't crash.
        if getattr(err, "status", None) == 404:
            return
        log.warning(
            "status patch of %s %s/%s failed: %s",
            kind.INFO.kind,
            metadata["namespace"],
            metadata["name"],
            err,
        )
        return
    if plan.transition is not None:
        emit_transition(snapshot, plan.transition)


def snapshot(body: kopf.Body) -> Snapshot:
    # The index outlives this event; copy so later events cannot mutate the stored value.
    return copy.deepcopy(dict(body))


def dependents(index: RefsIndex, key: RefKey) -> Iterable[Snapshot]:
    return list(index.get(key, []))


def deployment_facts(
    index: DeploymentsIndex, namespace: str, names: Iterable[str]
) -> dict[str, DeploymentFacts]:
    facts = {}
    for name in names:
        store = index.get((namespace, name))
        if store is not None:
            uris = list(store)
            facts[name] = DeploymentFacts(model_uri=uris[0] if uris else None)
    return facts


def existing_names(index: TrainingRunsIndex, namespace: str, names: Iterable[str]) -> set[str]:
    return {name for name in names if (namespace, name) in index}
