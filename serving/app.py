"""The model server: `create_app(settings, ...)` builds it, models load in the background
(liveness answers at once, readiness once every model is loaded and warmed).

The prediction routes are plain ASGI in front of FastAPI (serving.prediction_routes); the
health, metadata, feedback and metrics routes are FastAPI's. Request metrics, the request
id and the request span come from one pure-ASGI middleware around both that skips /metrics
and the health paths.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from opentelemetry import trace
from opentelemetry.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from maestro.monitoring.tracing import parent_context
from maestro.serving import protocols
from maestro.serving.abtest_router import ABTestRouter, abtest_role
from maestro.serving.auth import AuthMiddleware, checks_from
from maestro.serving.binary_tensors import EXTENSION
from maestro.serving.errors import ServingError
from maestro.serving.feedback import count_for_variant, feedback_fields
from maestro.serving.metrics import ServingMetrics
from maestro.serving.middleware import RequestMiddleware
from maestro.serving.model_metadata import SERVER_NAME, metadata, server_version, versioned
from maestro.serving.prediction_routes import (
    PredictionRoutes,
    error_headers,
    match,
    read_body,
    v2_error_body,
)
from maestro.serving.predlog import PredictionLog
from maestro.serving.predlog_shipper import prediction_shipper
from maestro.serving.settings import ServeSettings
from maestro.serving.state import Loader, ServerState, load_models
from maestro.serving.threads import in_daemon_thread

log = logging.getLogger(__name__)

JSON = "application/json"


# --- helpers for handlers -----------------------------------------------------------------------


def _json(document: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(protocols.dumps(document), status_code=status, media_type=JSON, headers=headers)


def v2_error(err: ServingError) -> Response:
    return Response(
        v2_error_body(err), status_code=err.status, media_type=JSON, headers=error_headers(err)
    )


async def _body(request: Request, limit: int) -> bytes:
    body = await read_body(request.scope, request.receive, limit)
    if body is None:
        raise ClientDisconnect()
    return body


class ServingApp(FastAPI):
    """FastAPI behind `front`: serving's middlewares, then the prediction routes taken
    before FastAPI's own stack (see serving.prediction_routes)."""

    front: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.front is None:
            await super().__call__(scope, receive, send)
        else:
            await self.front(scope, receive, send)


# --- the app ----------------------------------------------------------------------------------


def create_app(
    settings: ServeSettings,
    *,
    loader: Loader = load_models,
    registry: CollectorRegistry | None = None,
    tracer_provider: TracerProvider | None = None,
    on_fatal: Callable[[str], None] | None = None,
    freeze_gc: bool = True,
    serve_grpc: bool = False,
) -> FastAPI:
    """The server app. `loader` runs in a thread at start-up; `on_fatal` is told when it
    fails (the CLI then exits 1, so the pod restarts and shows the error). `freeze_gc`
    moves everything alive after loading out of the collector's reach (off for apps
    embedded in a longer-lived process, such as a test run). `serve_grpc` starts the gRPC
    service on settings.grpc_port (unless 0) with the app and stops it before the models:
    the CLI's server does, apps embedded in tests do not."""
    provider = tracer_provider or trace.NoOpTracerProvider()
    metrics = ServingMetrics(
        registry or CollectorRegistry(), deployment=settings.deployment, revision=settings.revision
    )
    predlog = None
    if settings.prediction_log is not None or settings.prediction_log_uri is not None:
        predlog = PredictionLog(
            settings.prediction_log,
            sample=settings.prediction_log_sample,
            deployment=settings.deployment,
            revision=settings.revision,
            variant=settings.abtest_variant,
            shipper=prediction_shipper(settings),
        )
    state = ServerState(settings, metrics, provider.get_tracer("maestro.serving"), predlog)

    async def load() -> None:
        # A child of the reconcile that created this revision (TRACEPARENT), so the trace
        # of a rollout runs from the operator into the pods; requests start their own.
        with state.tracer.start_as_current_span(
            "load models",
            context=parent_context(settings.traceparent),
            attributes={"maestro.model_uris": list(settings.named_uris().values())},
        ) as span:
            error = await load_and_install()
            if error is not None:
                span.set_status(trace.Status(trace.StatusCode.ERROR, error))

    async def load_and_install() -> str | None:
        """Load the models and take traffic; the error, when that failed."""
        loop = asyncio.get_running_loop()
        try:
            loaded = await in_daemon_thread(loader, settings)
            state.install(loaded, loop)
        except Exception as err:
            state.load_error = f"{type(err).__name__}: {err}"
            log.error("cannot load the models: %s", state.load_error)
            if on_fatal is not None:
                on_fatal(state.load_error)
            return state.load_error
        # Everything loaded now lives until exit: keep it out of the collector's full passes
        # (they otherwise walk every model object and cause 100 ms+ tail latencies).
        if freeze_gc:
            gc.collect()
            gc.freeze()
        state.ready = True
        for served in state.models.values():
            log.info(
                "model ready",
                extra={
                    "model": served.name,
                    "uri": served.model.uri,
                    "model_version": served.version,
                    "flavor": served.model.flavor,
                    "convention": served.model.convention,
                    "load_seconds": round(served.model.load_seconds, 3),
                    "warmup_error": served.model.warmup_error,
                },
            )
        return None

    checks = checks_from(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        grpc_server = None
        if serve_grpc and settings.grpc_port:
            from maestro.serving import grpc_server as grpc_service

            try:
                grpc_server = await grpc_service.start(
                    state, checks, settings.listen_host, settings.grpc_port
                )
            except RuntimeError as err:
                log.error("%s", err)
                if on_fatal is not None:
                    on_fatal(str(err))
            else:
                state.drain_hooks.append(
                    grpc_service.stop_on_drain(grpc_server, settings.drain_seconds)
                )
        loading = asyncio.get_running_loop().create_task(load())
        yield
        if not loading.done():
            loading.cancel()
        if grpc_server is not None:
            # Stopping since the drain began (or now): in-flight calls finish, new ones are
            # refused; stop is idempotent, this waits for the same shutdown.
            await grpc_server.stop(settings.drain_seconds)
        await state.shutdown()

    app = ServingApp(
        # Our middleware makes the request spans and metrics (with model labels); FastAPI's
        # own would duplicate them and costs an environment lookup per request.
        telemetry={"tracing": False, "metrics": False},
        title="Maestro model server",
        version=server_version(),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.serving = state
    limit = settings.max_body_bytes
    predictions = PredictionRoutes(state, limit)

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        route = match(scope["path"]) if scope["type"] == "http" else None
        if route is None:
            await FastAPI.__call__(app, scope, receive, send)
        else:
            await predictions(route, scope, receive, send)

    # Inside the request middleware, so refused requests are counted and traced too.
    front: ASGIApp = AuthMiddleware(dispatch, checks=checks) if checks else dispatch
    front = RequestMiddleware(front, state=state)
    abtest = abtest_role(settings, metrics)
    if abtest:
        # Outermost: see serving.abtest_router.
        front = ABTestRouter(front, role=abtest[0], metrics=abtest[1])
    app.front = front

    # --- Open Inference Protocol v2 -------------------------------------------------------
    @app.get("/v2/health/live")
    async def live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        ok = state.ready and not state.draining
        return _json({"ready": ok}, 200 if ok else 503)

    @app.get("/v2")
    async def server_metadata() -> Response:
        return _json({"name": SERVER_NAME, "version": server_version(), "extensions": [EXTENSION]})

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> Response:
        try:
            served = versioned(state.served(name), version)
        except ServingError as err:
            return v2_error(err)
        return _json(metadata(served, state))

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Response:
        try:
            versioned(state.served(name), version)
        except ServingError as err:
            return v2_error(err)
        ok = state.ready and not state.draining
        return _json({"name": name, "ready": ok}, 200 if ok else 503)

    @app.get("/ping")
    @app.get("/health")
    async def ping() -> Response:
        """MLflow's scoring-server health path: 200 once ready."""
        ok = state.ready and not state.draining
        return _json({"ready": ok}, 200 if ok else 503)

    # --- outcomes and metrics -------------------------------------------------------------
    @app.post("/feedback")
    async def feedback(request: Request) -> Response:
        try:
            fields = feedback_fields(
                protocols.parse_json(await _body(request, limit)), state.default
            )
            served = state.served(fields.model)
            variant = count_for_variant(*abtest, fields) if abtest else None
        except ServingError as err:
            return v2_error(err)
        served.metrics.feedback.inc()
        if isinstance(fields.outcome, bool | int | float):
            served.metrics.outcome.observe(float(fields.outcome))
        rid = fields.request_id or f"user:{fields.user_key}"
        if state.predlog is not None:
            state.predlog.record_feedback(request_id=rid, model=served.name, outcome=fields.outcome)
        answer = {"request_id": fields.request_id, "user_key": fields.user_key}
        if abtest:
            answer["variant"] = variant.value if variant else None
        return _json({**answer, "model": served.name, "recorded": True})

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
