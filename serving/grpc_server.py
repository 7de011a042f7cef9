"""The Open Inference Protocol over gRPC: `inference.GRPCInferenceService` on its own port.

A grpc.aio server on the event loop uvicorn runs (serving.app starts it with the app and
stops it before the models), in front of the same models and batchers as HTTP, with the
same metrics (protocol label `grpc`, code = the HTTP status of the same outcome), request
spans, request ids (`x-request-id` metadata, answered in the trailers), bearer-token or
JWT checks (`authorization` metadata) and queue limits. Errors are the HTTP path's errors
under the matching status code (serving.grpc_tensors.status_code), with the same message.

ServerLive and ServerReady are the health checks: open, not traced, not counted, as the
HTTP health paths are. The ABTest split (serving.abtest_router) is HTTP only: on gRPC a
pod answers with the variant it serves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from opentelemetry import propagate
from opentelemetry.trace import SpanKind

from maestro.serving import grpc_tensors
from maestro.serving.auth import Check, accepted, bearer_token
from maestro.serving.binary_tensors import EXTENSION
from maestro.serving.errors import ServingError, Unavailable
from maestro.serving.middleware import RequestContext, RequestIds
from maestro.serving.model_metadata import SERVER_NAME, metadata, server_version, versioned
from maestro.serving.proto import grpc_predict_v2_pb2 as pb
from maestro.serving.state import ServerState

log = logging.getLogger(__name__)

CLIENT_CLOSED = 499  # what a cancelled call is counted as (no HTTP status says it)
PROTOCOL = "grpc"  # the requests metric's protocol label
Method = Callable[[Any, RequestContext], Awaitable[Any]]


class InferenceService:
    """The service's six methods, each wrapped with auth, span, metrics and error mapping."""

    def __init__(self, state: ServerState, checks: Sequence[Check]) -> None:
        self.state = state
        self.checks = tuple(checks)
        self._ids = RequestIds()

    def handler(self) -> grpc.GenericRpcHandler:
        methods: dict[str, tuple[Method, Any, bool]] = {
            # name: (implementation, request message, a health check)
            "ServerLive": (self.server_live, pb.ServerLiveRequest, True),
            "ServerReady": (self.server_ready, pb.ServerReadyRequest, True),
            "ModelReady": (self.model_ready, pb.ModelReadyRequest, False),
            "ServerMetadata": (self.server_metadata, pb.ServerMetadataRequest, False),
            "ModelMetadata": (self.model_metadata, pb.ModelMetadataRequest, False),
            "ModelInfer": (self.model_infer, pb.ModelInferRequest, False),
        }
        return grpc.method_handlers_generic_handler(
            grpc_tensors.SERVICE,
            {
                name: grpc.unary_unary_rpc_method_handler(
                    self._health(method) if health else self._rpc(name, method),
                    request_deserializer=message.FromString,
                    response_serializer=_serialize,
                )
                for name, (method, message, health) in methods.items()
            },
        )

    # --- the wrapping ----------------------------------------------------------------------
    def _health(self, method: Method) -> Callable[[Any, Any], Awaitable[Any]]:
        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            return await method(request, RequestContext(""))

        return behavior

    def _rpc(self, name: str, method: Method) -> Callable[[Any, Any], Awaitable[Any]]:
        span_name = f"{grpc_tensors.SERVICE}/{name}"
        counted = name == "ModelInfer"  # as HTTP counts only its prediction paths

        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            headers = _metadata(context)
            call = RequestContext(self._ids(headers.get("x-request-id", "")))
            parent = propagate.extract(headers) if "traceparent" in headers else None
            status = 500
            code = grpc.StatusCode.UNKNOWN
            with self.state.tracer.start_as_current_span(
                span_name, context=parent, kind=SpanKind.SERVER
            ) as span:
                try:
                    if self.checks:
                        await self._authorize(headers)
                    response = await method(request, call)
                    status, code = 200, grpc.StatusCode.OK
                    context.set_trailing_metadata((("x-request-id", call.request_id),))
                    return response
                except ServingError as err:
                    status, code = err.status, grpc_tensors.status_code(err)
                    trailers = [("x-request-id", call.request_id)]
                    if isinstance(err, Unavailable):
                        trailers.append(("retry-after", str(err.retry_after)))
                    await context.abort(code, err.message, tuple(trailers))
                except asyncio.CancelledError:
                    # The client went away or its deadline passed: not the server's error
                    # (nginx's 499), so neither the error-rate alerts nor a canary's gate
                    # count it as a 5xx.
                    status, code = CLIENT_CLOSED, grpc.StatusCode.CANCELLED
                    raise
                finally:
                    if context.cancelled():  # answered after the client's deadline, or not
                        status, code = CLIENT_CLOSED, grpc.StatusCode.CANCELLED
                    if counted:
                        metrics = call.metrics or self.state.unknown
                        metrics.request(status, PROTOCOL, time.perf_counter() - started)
                    if span.is_recording():
                        span.set_attribute("rpc.system", "grpc")
                        span.set_attribute("rpc.service", grpc_tensors.SERVICE)
                        span.set_attribute("rpc.method", name)
                        span.set_attribute("rpc.grpc.status_code", code.value[0])
                        span.set_attribute("maestro.request_id", call.request_id)

        return behavior

    async def _authorize(self, headers: dict[str, str]) -> None:
        token = bearer_token(headers.get("authorization", ""))
        if token is None:
            raise ServingError("send authorization: Bearer <token> metadata", status=401)
        if not await accepted(self.checks, token):
            raise ServingError("the bearer token is not accepted", status=403)

    # --- the methods -------------------------------------------------------------------------
    async def server_live(self, _: pb.ServerLiveRequest, __: RequestContext) -> Any:
        return pb.ServerLiveResponse(live=True)

    async def server_ready(self, _: pb.ServerReadyRequest, __: RequestContext) -> Any:
        return pb.ServerReadyResponse(ready=self.state.ready and not self.state.draining)

    async def model_ready(self, request: pb.ModelReadyRequest, _: RequestContext) -> Any:
        versioned(self.state.served(request.name), request.version or None)
        return pb.ModelReadyResponse(ready=self.state.ready and not self.state.draining)

    async def server_metadata(self, _: pb.ServerMetadataRequest, __: RequestContext) -> Any:
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=server_version(), extensions=[EXTENSION]
        )

    async def model_metadata(self, request: pb.ModelMetadataRequest, _: RequestContext) -> Any:
        served = versioned(self.state.served(request.name), request.version or None)
        return grpc_tensors.metadata_response(metadata(served, self.state))

    async def model_infer(self, request: pb.ModelInferRequest, call: RequestContext) -> Any:
        state = self.state
        served = versioned(state.served(request.model_name), request.model_version or None)
        call.metrics = served.metrics
        payload, _ = grpc_tensors.request_payload(request)
        names = grpc_tensors.requested_outputs(request)
        started = time.perf_counter()
        answer = await served.infer(payload)
        state.after_answer(served, payload, answer, call.request_id, time.perf_counter() - started)
        return grpc_tensors.infer_response(
            served.name, served.version, request.id, answer.outputs, names
        )


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


def _metadata(context: grpc.aio.ServicerContext) -> dict[str, str]:
    """The call's text metadata by lower-case key (binary `-bin` entries left out)."""
    found: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if isinstance(value, str):
            found[key.lower()] = value
    return found


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def start(
    state: ServerState, checks: Sequence[Check], host: str, port: int
) -> grpc.aio.Server:
    """The gRPC server, listening (RuntimeError when the port cannot be bound). Messages
    larger than the HTTP body limit are refused by gRPC itself (RESOURCE_EXHAUSTED)."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", state.settings.max_body_bytes),
            # gRPC sets SO_REUSEPORT by default: a second server would bind the same port
            # silently and take half the connections.
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers((InferenceService(state, checks).handler(),))
    where = address(host, port)
    try:
        bound = server.add_insecure_port(where)
    except RuntimeError as err:
        raise RuntimeError(f"cannot listen for gRPC on {where}: {err}") from None
    if bound == 0:  # older grpcio reports failure so
        raise RuntimeError(f"cannot listen for gRPC on {where}")
    await server.start()
    log.info("gRPC listening", extra={"host": host, "port": bound})
    return server


def stop_on_drain(server: grpc.aio.Server, grace: float) -> Callable[[], None]:
    """A drain hook (ServerState.drain_hooks): from the signal handler, schedule the
    server's stop on its loop, so gRPC drains while HTTP does."""
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []  # holds the task until it is done

    def hook() -> None:
        def begin() -> None:
            stopping.append(loop.create_task(server.stop(grace)))

        loop.call_soon_threadsafe(begin)

    return hook
