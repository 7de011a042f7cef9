"""TrainingRun handlers: thin Kopf glue around trainingrun.controller.

A TrainingRun is reconciled on its own events and on those of the job it owns (a batch
Job or a Kubeflow PyTorchJob/TFJob/XGBoostJob); tuning progress and retries come back
through the controller's work queue.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import kopf

from maestro.operators.api.common import GROUP, VERSION
from maestro.operators.api.trainingrun import TrainingRun
from maestro.operators.core.object_cache import ObjectCache
from maestro.operators.core.registry import import_mlflow
from maestro.operators.core.runtime import Runtime
from maestro.operators.trainingrun.controller import Controller
from maestro.operators.trainingrun.gather import RUN_KIND, controlling_run
from maestro.operators.trainingrun.render import JOB_KINDS, LABEL_TRAININGRUN

log = logging.getLogger(__name__)


def _warm_up() -> None:
    import_mlflow()
    import optuna  # noqa: F401

    import maestro.training.tuning  # noqa: F401


def _log_error(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("TrainingRun warm-up failed", exc_info=future.exception())


def register(registry: kopf.OperatorRegistry, runtime: Runtime) -> None:
    controller = Controller(runtime=runtime, config=runtime.config)

    warmed = threading.Event()

    @kopf.on.startup(id="trainingrun-startup", registry=registry)
    async def trainingrun_startup(**_: Any) -> None:
        controller.queue.loop = asyncio.get_running_loop()

    @kopf.on.startup(id="trainingrun-runs", registry=registry)
    def runs_started(**_: Any) -> None:
        # The namespace queue counts runs from this watch (see trainingrun.written).
        controller.runs.cache = ObjectCache(
            controller.kube, [RUN_KIND], None, namespaces=runtime.config.namespaces
        )
        controller.runs.cache.start()

    @kopf.on.cleanup(id="trainingrun-runs-stop", registry=registry)
    def runs_stopped(**_: Any) -> None:
        if controller.runs.cache is not None:
            controller.runs.cache.stop()

    def warm_up() -> None:
        """Importing MLflow and Optuna takes seconds and about 130 MB: done at the first
        TrainingRun (beside its first reconcile, which waits on the same import), so an
        operator that never sees one (ModelDeployments only) never pays for them."""
        loop = controller.queue.loop
        if warmed.is_set() or not runtime.config.mlflow_tracking_uri or loop is None:
            return
        warmed.set()
        loop.call_soon_threadsafe(
            lambda: loop.run_in_executor(None, _warm_up).add_done_callback(_log_error)
        )

    @kopf.on.event(GROUP, VERSION, TrainingRun.INFO.plural, id="trainingrun", registry=registry)
    def trainingrun_event(
        *, type: str, body: kopf.Body, namespace: str | None, name: str, **_: Any
    ) -> None:
        if type == "DELETED":
            controller.deleted(body)
        else:
            warm_up()
            controller.reconcile(namespace or "", name)

    def job_event(*, type: str, body: kopf.Body, namespace: str | None, **_: Any) -> None:
        owner = controlling_run(body)
        if owner is None:
            return
        if type == "DELETED" and controller.kube.get_run(namespace or "", owner) is None:
            return  # deleted with its run
        controller.reconcile(namespace or "", owner)

    for kind in JOB_KINDS:
        kopf.on.event(
            kind.group,
            kind.version,
            kind.plural,
            id=f"trainingrun-{kind.plural}",
            labels={LABEL_TRAININGRUN: kopf.PRESENT},
            registry=registry,
        )(job_event)
