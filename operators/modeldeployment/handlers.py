"""ModelDeployment handlers: thin Kopf glue around modeldeployment.controller.

A ModelDeployment is reconciled on its own events and on those of the Deployments of its
revisions (their readiness moves rollouts along), which come with every object it owns
from watches the controller reads instead of listing; time-based steps and registry polls come
back through the controller's work queue. With MAESTRO_REGISTRY_WEBHOOK_LISTEN set, MLflow's
webhooks tell which registered model changed, and the ModelDeployments that name it are
reconciled at once with a fresh registry answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import kopf

from maestro.operators.api.abtest import ABTest
from maestro.operators.api.common import GROUP, VERSION
from maestro.operators.api.modeldeployment import ModelDeployment
from maestro.operators.core import registry_webhook
from maestro.operators.core.abtests import SplitPlan, split_plan
from maestro.operators.core.handlers import start_queue
from maestro.operators.core.object_cache import ObjectCache
from maestro.operators.core.references import References, RefKey
from maestro.operators.core.runtime import Runtime
from maestro.operators.modeldeployment.controller import Controller
from maestro.operators.modeldeployment.render import LABEL_DEPLOYMENT, owned_kinds
from maestro.serving.uris import registered_name

KIND = ModelDeployment.INFO.kind
REGISTERED_MODEL = "RegisteredModel"
log = logging.getLogger(__name__)


def model_reference(spec: kopf.Spec) -> set[RefKey]:
    """The registered model a ModelDeployment names (registered models have no namespace)."""
    model = spec.get("model")
    uri = model.get("uri") if isinstance(model, Mapping) else None
    name = registered_name(uri) if isinstance(uri, str) else ""
    return {("", REGISTERED_MODEL, name)} if name else set()


def owner_name(body: Mapping[str, Any]) -> str | None:
    """The ModelDeployment that controls a Deployment, if one does."""
    labels = (body.get("metadata") or {}).get("labels") or {}
    for owner in (body.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller") and owner.get("kind") == KIND:
            return str(owner["name"])
    return labels.get(LABEL_DEPLOYMENT)


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    controller = Controller(runtime=runtime)
    start_queue(registry, controller.queue, id="modeldeployment-startup")
    models = References()
    config = runtime.config

    def registry_changed(model: str) -> None:
        controller.registry_cache.invalidate(model)
        for namespace, name in models.dependents_anywhere(("", REGISTERED_MODEL, model)):
            controller.queue.requeue(namespace, name, 0)

    if config.registry_webhook_listen:
        secret = config.registry_webhook_secret
        receiver = registry_webhook.Receiver(
            config.registry_webhook_listen,
            secret.get_secret_value() if secret else None,
            registry_changed,
            clock=time.time,
        )

        @kopf.on.startup(id="modeldeployment-registry-webhook", registry=registry)
        async def webhook_started(**_: Any) -> None:
            await receiver.start()
            if config.registry_webhook_url and config.mlflow_tracking_uri:
                url, name = config.registry_webhook_url, config.registry_webhook_name
                loop = asyncio.get_running_loop()
                # Best effort: without it, polling alone notices registry changes.
                token = secret.get_secret_value() if secret else None
                # MLflow is imported on first use of the client: not on the event loop.
                register = loop.run_in_executor(
                    None,
                    lambda: registry_webhook.register(controller.registry.client, name, url, token),
                )
                register.add_done_callback(_log_registration)

        @kopf.on.cleanup(id="modeldeployment-registry-webhook-stop", registry=registry)
        async def webhook_stopped(**_: Any) -> None:
            await receiver.stop()

    _watch_abtests(registry, controller)

    @kopf.on.event(
        GROUP, VERSION, ModelDeployment.INFO.plural, id="modeldeployment", registry=registry
    )
    def modeldeployment_event(
        *, type: str, namespace: str | None, name: str, spec: kopf.Spec, **_: Any
    ) -> None:
        if type == "DELETED":
            models.forget(namespace or "", name)
            controller.queue.forget(namespace or "", name)
            controller.analysis_backoff.succeeded((namespace or "", name))
        else:
            models.record(namespace or "", name, model_reference(spec))
            controller.reconcile(namespace or "", name)

    _watch_children(registry, controller)


def _watch_children(registry: kopf.OperatorRegistry, controller: Controller) -> None:
    """The owned objects come from watches (operators.core.object_cache): a reconcile reads
    them from memory. A revision's Deployment changing (its readiness moves rollouts
    along) or any owned object deleted by someone else requeues its ModelDeployment."""

    def child_changed(event: str, obj: Mapping[str, Any]) -> None:
        owner = owner_name(obj)
        if owner is not None and (event == "DELETED" or obj.get("kind") == "Deployment"):
            controller.queue.wake(str(obj["metadata"].get("namespace") or ""), owner)

    @kopf.on.startup(id="modeldeployment-children", registry=registry)
    def children_started(**_: Any) -> None:
        controller.cache = ObjectCache(
            controller.kube,
            owned_kinds(controller.settings),
            LABEL_DEPLOYMENT,
            namespaces=controller.runtime.config.namespaces,
            on_change=child_changed,
        )
        controller.cache.start()

    @kopf.on.cleanup(id="modeldeployment-children-stop", registry=registry)
    def children_stopped(**_: Any) -> None:
        if controller.cache is not None:
            controller.cache.stop()


def _watch_abtests(registry: kopf.OperatorRegistry, controller: Controller) -> None:
    """A deployment renders the split of the ABTest running on it: reconcile it when that
    split changes (starts, ends, moves traffic), not at every status write of the test."""
    splits: dict[tuple[str, str], SplitPlan | None] = {}

    @kopf.on.event(
        GROUP, VERSION, ABTest.INFO.plural, id="modeldeployment-abtests", registry=registry
    )
    def abtest_event(*, type: str, body: kopf.Body, namespace: str | None, **_: Any) -> None:
        deployment = (body.get("spec") or {}).get("deployment")
        if not isinstance(deployment, str):
            return
        key = (namespace or "", str(body["metadata"]["name"]))
        plan = None if type == "DELETED" else split_plan(body)
        if splits.get(key) != plan or type == "DELETED":
            splits[key] = plan
            controller.reconcile(namespace or "", deployment)


def _log_registration(future: Any) -> None:
    if future.cancelled():
        return
    if future.exception() is not None:
        log.warning("MLflow webhook not registered (polling only): %s", future.exception())
    else:
        log.info("MLflow webhook registered")
