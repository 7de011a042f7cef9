"""The prediction routes (`/invocations`, `/predict`, `/v2/models/{name}[/versions/{v}]/infer`)
as plain ASGI, taken before FastAPI.

Why: under load FastAPI's own stack (its error, body-limit, telemetry and exception
middlewares, the router, a Request and a Response per request) costs about twice what
uvicorn alone spends on a whole request (`make bench-serving`'s two ceiling rows). These
routes parse their bodies themselves and answer with pre-serialised bytes, so they gain
nothing from it; every other path still goes through FastAPI. Serving's own middlewares
(A/B routing, request id, metrics and span, auth) wrap both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive, Scope, Send

from maestro.serving import binary_tensors, protocols
from maestro.serving.binary_tensors import OutputRequest
from maestro.serving.errors import BodyTooLarge, ServingError, Unavailable
from maestro.serving.middleware import RequestContext
from maestro.serving.model_metadata import versioned
from maestro.serving.runtime import Answer, ServedModel
from maestro.serving.schema import Payload
from maestro.serving.state import ServerState

log = logging.getLogger(__name__)

JSON = b"application/json"
V2_PREFIX = "/v2/models/"
V2_SUFFIX = "/infer"
_BINARY_HEADER = binary_tensors.HEADER.encode("latin-1")

Headers = Iterable[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Route:
    """A prediction route: its protocol, the model it names ("" for the default one) and
    the version it asks for, if any."""

    protocol: str
    model: str = ""
    version: str | None = None


INVOCATIONS = Route("invocations")
PREDICT = Route("predict")


def match(path: str) -> Route | None:
    """The prediction route of a path, whatever the method; None for every other path."""
    if path == "/invocations":
        return INVOCATIONS
    if path == "/predict":
        return PREDICT
    if path.startswith(V2_PREFIX) and path.endswith(V2_SUFFIX):
        parts = path[len(V2_PREFIX) : -len(V2_SUFFIX)].split("/")
        if len(parts) == 1 and parts[0]:
            return Route("v2", parts[0])
        if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
            return Route("v2", parts[0], parts[2])
    return None


def header(scope: Scope, name: bytes) -> str | None:
    """A request header (ASGI servers give the names in lower case)."""
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes | None:
    """The body, refused with 413 as soon as it is known to exceed `limit`; None when the
    client went away before sending it all."""
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def respond(
    send: Send, status: int, body: bytes, content_type: bytes = JSON, headers: Headers = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --- error bodies (shared with the FastAPI routes) -------------------------------------------

_MLFLOW_CODES = {
    400: "MALFORMED_REQUEST",
    404: "RESOURCE_DOES_NOT_EXIST",
    413: "BAD_REQUEST",
    422: "BAD_REQUEST",
    500: "INTERNAL_ERROR",
    503: "TEMPORARILY_UNAVAILABLE",
}


def error_headers(err: ServingError) -> dict[str, str]:
    return {"Retry-After": str(err.retry_after)} if isinstance(err, Unavailable) else {}


def v2_error_body(err: ServingError) -> bytes:
    return protocols.dumps({"error": err.message})


def mlflow_error_body(err: ServingError) -> bytes:
    code = _MLFLOW_CODES.get(err.status, "BAD_REQUEST")
    return protocols.dumps({"error_code": code, "message": err.message})


# --- the routes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    body: bytes
    content_type: bytes = JSON
    headers: tuple[tuple[bytes, bytes], ...] = ()


class PredictionRoutes:
    """Answers the prediction routes of one server's state."""

    def __init__(self, state: ServerState, limit: int) -> None:
        self.state = state
        self.limit = limit

    async def __call__(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            body = protocols.dumps({"detail": "Method Not Allowed"})
            await respond(send, 405, body, headers=((b"allow", b"POST"),))
            return
        try:
            reply = await self._answer(route, scope, receive)
        except ServingError as err:
            await self._refuse(route, send, err)
            return
        except Exception:
            log.exception("prediction failed", extra={"path": scope["path"]})
            await self._refuse(route, send, ServingError("internal error"))
            return
        if reply is not None:
            await respond(send, 200, reply.body, reply.content_type, reply.headers)

    async def _refuse(self, route: Route, send: Send, err: ServingError) -> None:
        body = v2_error_body(err) if route.protocol == "v2" else mlflow_error_body(err)
        extra = tuple((k.lower().encode(), v.encode()) for k, v in error_headers(err).items())
        await respond(send, err.status, body, headers=extra)

    async def _answer(self, route: Route, scope: Scope, receive: Receive) -> Reply | None:
        state = self.state
        if route.version is not None:
            versioned(state.served(route.model), route.version)
        served = state.served(route.model or state.default)
        context: RequestContext = scope["maestro"]
        context.metrics = served.metrics
        body = await read_body(scope, receive, self.limit)
        if body is None:
            return None  # the client is gone: nobody to answer
        wanted: OutputRequest | None = None
        request_id: str | None = None
        payload: Payload
        if route.protocol == "v2":
            payload, request_id, wanted = parse_v2(body, header(scope, _BINARY_HEADER))
        elif route.protocol == "invocations":
            content_type = header(scope, b"content-type") or "application/json"
            payload = protocols.parse_invocations(body, content_type)
        else:
            payload = protocols.parse_predict(body)
        started = time.perf_counter()
        answer = await served.infer(payload)
        state.after_answer(
            served, payload, answer, context.request_id, time.perf_counter() - started
        )
        if wanted is None:
            return Reply(protocols.dumps(protocols.mlflow_response(answer.outputs)))
        return v2_reply(served, request_id, wanted, answer)


def parse_v2(body: bytes, header_length: str | None) -> tuple[Payload, str | None, OutputRequest]:
    """A v2 infer body, JSON or with binary tensors (when the extension's header is sent)."""
    if header_length is None:
        document: Any = protocols.parse_json(body)
        payload, request_id = protocols.parse_v2(document)
    else:
        document, stacked = binary_tensors.read_request(body, header_length)
        if stacked is None:
            payload, request_id = protocols.parse_v2(document)
        else:
            payload, request_id = stacked, protocols.v2_request_id(document)
    return payload, request_id, binary_tensors.output_request(document)


def v2_reply(
    served: ServedModel, request_id: str | None, wanted: OutputRequest, answer: Answer
) -> Reply:
    if wanted.default:
        document = protocols.v2_response(served.name, served.version, request_id, answer.outputs)
        return Reply(protocols.dumps(document))
    head: dict[str, Any] = {"model_name": served.name, "model_version": served.version or None}
    if request_id is not None:
        head["id"] = request_id
    body, header_length = binary_tensors.encode_response(head, answer.outputs, wanted)
    if header_length is None:
        return Reply(body)
    return Reply(
        body,
        binary_tensors.OCTET_STREAM.encode(),
        ((_BINARY_HEADER, str(header_length).encode()),),
    )
