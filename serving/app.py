"""The FastAPI model server: `create_app(settings, ...)` builds it, models load in the
background (liveness answers at once, readiness once every model is loaded and warmed).

The request path is kept lean: the body is parsed once with `json`, no pydantic models,
responses are pre-serialised bytes; request metrics, the request id and the request span come
from one pure-ASGI middleware that skips /metrics and the health paths. (About 400 lines:
the routes of three protocols share the app's state and error mapping, so they stay here.)
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from opentelemetry import trace
from opentelemetry.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.routing import Route

from maestro.serving import binary_tensors, protocols
from maestro.serving.abtest_router import ABTestRouter, abtest_role
from maestro.serving.auth import AuthMiddleware, checks_from
from maestro.serving.binary_tensors import EXTENSION, OutputRequest
from maestro.serving.errors import BodyTooLarge, ServingError, Unavailable
from maestro.serving.feedback import count_for_variant, feedback_fields
from maestro.serving.metrics import ServingMetrics
from maestro.serving.middleware import RequestContext, RequestMiddleware
from maestro.serving.model_metadata import SERVER_NAME, metadata, server_version, versioned
from maestro.serving.predlog import PredictionLog
from maestro.serving.predlog_shipper import prediction_shipper
from maestro.serving.runtime import Answer, ServedModel
from maestro.serving.schema import Payload
from maestro.serving.settings import ServeSettings
from maestro.serving.state import Loader, ServerState, load_models
from maestro.serving.threads import in_daemon_thread

log = logging.getLogger(__name__)

JSON = "application/json"


# --- helpers for handlers -----------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed `limit`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(document: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(protocols.dumps(document), status_code=status, media_type=JSON, headers=headers)


def v2_error(err: ServingError) -> Response:
    headers = {"Retry-After": str(err.retry_after)} if isinstance(err, Unavailable) else None
    return _json({"error": err.message}, err.status, headers)


_MLFLOW_CODES = {
    400: "MALFORMED_REQUEST",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "BAD_REQUEST",
    422: "BAD_REQUEST",
    500: "INTERNAL_ERROR",
    503: "TEMPORARILY_UNAVAILABLE",
}


def mlflow_error(err: ServingError) -> Response:
    headers = {"Retry-After": str(err.retry_after)} if isinstance(err, Unavailable) else None
    code = _MLFLOW_CODES.get(err.status, "BAD_REQUEST")
    return _json({"error_code": code, "message": err.message}, err.status, headers)


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
        loop = asyncio.get_running_loop()
        try:
            loaded = await in_daemon_thread(loader, settings)
            state.install(loaded, loop)
        except Exception as err:
            state.load_error = f"{type(err).__name__}: {err}"
            log.error("cannot load the models: %s", state.load_error)
            if on_fatal is not None:
                on_fatal(state.load_error)
            return
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

    app = FastAPI(
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
    # Inside the request middleware, so refused requests are counted and traced too.
    if checks:
        app.add_middleware(AuthMiddleware, checks=checks)
    app.add_middleware(RequestMiddleware, state=state)
    abtest = abtest_role(settings, metrics)
    if abtest:
        # Outermost: see serving.abtest_router.
        app.add_middleware(ABTestRouter, role=abtest[0], metrics=abtest[1])
    limit = settings.max_body_bytes

    async def predict(
        request: Request, name: str, parse: Callable[[bytes, Request], Any]
    ) -> tuple[ServedModel, Any, Answer] | ServingError:
        context: RequestContext = request.scope["maestro"]
        try:
            served = state.served(name)
            context.metrics = served.metrics
            parsed = parse(await read_body(request, limit), request)
            payload = parsed[0] if isinstance(parsed, tuple) else parsed
            started = time.perf_counter()
            answer = await served.infer(payload)
        except ServingError as err:
            return err
        state.after_answer(
            served, payload, answer, context.request_id, time.perf_counter() - started
        )
        return served, parsed, answer

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

    def parse_v2(body: bytes, request: Request) -> tuple[Payload, str | None, OutputRequest]:
        header_length = request.headers.get(binary_tensors.HEADER)
        if header_length is None:
            document = protocols.parse_json(body)
        else:
            document = binary_tensors.parse_request(body, header_length)
        payload, request_id = protocols.parse_v2(document)
        return payload, request_id, binary_tensors.output_request(document)

    # The three prediction routes are plain Starlette routes: FastAPI's dependency solving
    # and response handling would add to every request and give nothing here (the body is
    # parsed and checked by the protocols and the signature, the response is bytes).
    async def v2_infer(request: Request) -> Response:
        name = request.path_params["name"]
        version = request.path_params.get("version")
        if version is not None:
            try:
                versioned(state.served(name), version)
            except ServingError as err:
                return v2_error(err)
        result = await predict(request, name, parse_v2)
        if isinstance(result, ServingError):
            return v2_error(result)
        served, (_, request_id, wanted), answer = result
        if wanted.default:
            return _json(
                protocols.v2_response(served.name, served.version, request_id, answer.outputs)
            )
        head: dict[str, Any] = {"model_name": served.name, "model_version": served.version or None}
        if request_id is not None:
            head["id"] = request_id
        try:
            body, header_length = binary_tensors.encode_response(head, answer.outputs, wanted)
        except ServingError as err:
            return v2_error(err)
        if header_length is None:
            return Response(body, media_type=JSON)
        return Response(
            body,
            media_type=binary_tensors.OCTET_STREAM,
            headers={"Inference-Header-Content-Length": str(header_length)},
        )

    # --- MLflow scoring protocol and /predict ----------------------------------------------
    def parse_invocations(body: bytes, request: Request) -> Payload:
        return protocols.parse_invocations(body, request.headers.get("content-type", JSON))

    async def invocations(request: Request) -> Response:
        result = await predict(request, state.default, parse_invocations)
        if isinstance(result, ServingError):
            return mlflow_error(result)
        return _json(protocols.mlflow_response(result[2].outputs))

    def parse_predict(body: bytes, _: Request) -> Payload:
        return protocols.parse_predict(body)

    async def predict_instances(request: Request) -> Response:
        result = await predict(request, state.default, parse_predict)
        if isinstance(result, ServingError):
            return mlflow_error(result)
        return _json(protocols.mlflow_response(result[2].outputs))

    # First in the router: every request walks the routes in order until one matches.
    predictions = [
        Route("/invocations", invocations, methods=["POST"]),
        Route("/predict", predict_instances, methods=["POST"]),
        Route("/v2/models/{name}/infer", v2_infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", v2_infer, methods=["POST"]),
    ]
    app.router.routes[:0] = predictions

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
                protocols.parse_json(await read_body(request, limit)), state.default
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
