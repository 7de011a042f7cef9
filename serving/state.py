"""What the server holds: the loaded models behind their batchers, readiness, the prediction
log, and the shadow comparison that runs after each answer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from maestro.serving.ensemble import agree
from maestro.serving.errors import ModelNotFound, ServingError, Unavailable
from maestro.serving.loader import LoadedModel
from maestro.serving.metrics import ServingMetrics, unknown_model
from maestro.serving.predlog import PredictionLog
from maestro.serving.runtime import Answer, ServedModel
from maestro.serving.schema import Payload
from maestro.serving.settings import ServeSettings

log = logging.getLogger(__name__)


@dataclass
class ModelSet:
    """What the loader hands the server: the models by name, the default one (served on
    /invocations and /predict), and the shadow."""

    models: list[LoadedModel]
    default: str
    shadow: LoadedModel | None = None


Loader = Callable[[ServeSettings], ModelSet]


def load_models(settings: ServeSettings) -> ModelSet:
    """Load every model the settings name (main, further, ensemble, shadow)."""
    import mlflow

    from maestro.serving.ensemble import ensemble_model
    from maestro.serving.loader import load_model
    from maestro.training.mlflow_plugins import load_mlflow_plugins_without_feast

    load_mlflow_plugins_without_feast()
    if settings.tracking_uri:
        mlflow.set_tracking_uri(settings.tracking_uri)
    members = [load_model(name, uri) for name, uri in settings.named_uris().items()]
    if settings.model_uri and not members[0].version and settings.model_version:
        members[0].version = settings.model_version  # the operator knows it (e.g. runs:/ URIs)
    models = list(members)
    default = members[0].name
    if settings.ensemble:
        models.append(ensemble_model(settings.ensemble_name, settings.ensemble, members))
        default = settings.ensemble_name
    shadow = load_model("shadow", settings.shadow_model_uri) if settings.shadow_model_uri else None
    return ModelSet(models, default, shadow)


@dataclass
class ServerState:
    """The server's models and flags; `ready` turns true once every model is loaded and
    warmed, `draining` once SIGTERM arrived (readiness then answers 503)."""

    settings: ServeSettings
    metrics: ServingMetrics
    tracer: trace.Tracer
    predlog: PredictionLog | None
    models: dict[str, ServedModel] = field(default_factory=dict)
    default: str = ""
    shadow: ServedModel | None = None
    ready: bool = False
    draining: bool = False
    load_error: str = ""
    background: set[asyncio.Task[None]] = field(default_factory=set)
    # Called once when the drain starts (SIGTERM), from the signal handler: e.g. the gRPC
    # server stops taking new calls while HTTP drains.
    drain_hooks: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.unknown = unknown_model(self.metrics)

    def begin_drain(self) -> None:
        if self.draining:
            return
        self.draining = True
        for hook in self.drain_hooks:
            hook()

    def served(self, name: str) -> ServedModel:
        model = self.models.get(name)
        if model is not None:
            return model
        if not self.ready:
            raise Unavailable("models are loading", retry_after=2)
        raise ModelNotFound(f"model {name!r} is not served (served: {', '.join(self.models)})")

    def install(self, loaded: ModelSet, loop: asyncio.AbstractEventLoop) -> None:
        s = self.settings
        knobs: dict[str, Any] = {
            "max_batch_size": s.max_batch_size,
            "max_wait": s.max_batch_wait_ms / 1000,
            "max_queue": s.max_queue,
        }
        for model in loaded.models:
            served = ServedModel(
                model, self.metrics.for_model(model.name, model.version), self.tracer, **knobs
            )
            served.start(loop)
            self.models[model.name] = served
        self.default = loaded.default
        if loaded.shadow is not None:
            main = self.models[loaded.default]
            # Shadow metrics carry the labels of the model whose traffic is mirrored.
            self.shadow = ServedModel(
                loaded.shadow, main.metrics, self.tracer, observe_batches=False, **knobs
            )
            self.shadow.start(loop, report=False)

    # --- after an answer: prediction log and shadow, off the response's path ---------------
    def after_answer(
        self, served: ServedModel, payload: Payload, answer: Answer, request_id: str, latency: float
    ) -> None:
        if self.predlog is not None and self.predlog.sampled():
            self.predlog.record_prediction(
                request_id=request_id,
                model=served.name,
                model_version=served.version,
                inputs=answer.inputs,
                columns=served.model.schema.names,
                outputs=answer.outputs,
            )
        if self.shadow is not None and served.name == self.default:
            task = asyncio.get_running_loop().create_task(
                self._mirror(served, payload, answer, latency)
            )
            self.background.add(task)
            task.add_done_callback(self.background.discard)

    async def _mirror(
        self, served: ServedModel, payload: Payload, answer: Answer, latency: float
    ) -> None:
        assert self.shadow is not None
        started = time.perf_counter()
        try:
            shadow_answer = await self.shadow.infer(payload)
        except Unavailable:
            return  # the shadow is behind: skip rather than queue without bound
        except ServingError as err:
            served.metrics.shadow_requests.inc()
            log.warning("shadow failed", extra={"model": self.shadow.model.uri, "error": str(err)})
            return
        delta = time.perf_counter() - started - latency
        agreed = agree(answer.outputs.first(), shadow_answer.outputs.first())
        served.metrics.shadow_requests.inc()
        if agreed:
            served.metrics.shadow_agreements.inc()
        served.metrics.shadow_delta.observe(delta)

    async def shutdown(self) -> None:
        self.draining = True
        if self.background:
            await asyncio.wait(list(self.background), timeout=self.settings.drain_seconds)
        for model in [*self.models.values(), *([self.shadow] if self.shadow else [])]:
            await asyncio.to_thread(model.stop, self.settings.drain_seconds)
        if self.predlog is not None:
            await asyncio.to_thread(self.predlog.close)
