"""TrainingRun handlers: thin Kopf glue around trainingrun.controller.

A TrainingRun is reconciled on its own events and on those of the job it owns (a batch
Job or a Kubeflow PyTorchJob/TFJob/XGBoostJob); tuning progress and retries come back
through the controller's work queue.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from maestro.operators.api.common import GROUP, VERSION
from maestro.operators.api.trainingrun import TrainingRun
from maestro.operators.core.registry import import_mlflow
from maestro.operators.core.runtime import Runtime
from maestro.operators.trainingrun.controller import Controller
from maestro.operators.trainingrun.gather import controlling_run
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

    @kopf.on.startup(id="trainingrun-startup", registry=registry)
    async def trainingrun_startup(**_: Any) -> None:
        loop = controller.queue.loop = asyncio.get_running_loop()
        if runtime.config.mlflow_tracking_uri:
            # Importing MLflow and Optuna takes seconds: do it now, not in the first run.
            loop.run_in_executor(None, _warm_up).add_done_callback(_log_error)

    @kopf.on.event(GROUP, VERSION, TrainingRun.INFO.plural, id="trainingrun", registry=registry)
    def trainingrun_event(
        *, type: str, body: kopf.Body, namespace: str | None, name: str, **_: Any
    ) -> None:
        if type == "DELETED":
            controller.deleted(body)
        else:
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
