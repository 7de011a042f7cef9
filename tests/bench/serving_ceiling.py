"""The ceilings of `make bench-serving`: endpoints that read the request body and answer a
fixed JSON document, with no model, no parsing and no metrics. What is left is the cost of
the web stack itself.

- `fastapi`: a FastAPI route under uvicorn, the framework's ceiling the issue names
  (`Request.body()`, a `Response` of fixed bytes);
- `asgi`: a bare ASGI callable under uvicorn, uvicorn's own ceiling (maestro serve's
  prediction routes are plain ASGI in front of FastAPI, see serving.prediction_routes);
- `grpc`: grpcio's asyncio server answering ModelInfer with a fixed ModelInferResponse,
  the gRPC library's ceiling (maestro serve's gRPC service runs on it).

Not in the bench's run, for comparing by hand with the gRPC cell's h2load command
(tests.bench.h2load): `grpc-handoff`, the same with each answer set by another thread as
maestro serve's batcher sets it, and `grpc-sync`, grpcio's thread-pool server.

The HTTP ones serve `/invocations` and `/v2/models/{name}/infer`, one process, uvloop and
httptools (what `maestro serve` runs on).

    python -m tests.bench.serving_ceiling {fastapi|asgi|grpc|grpc-handoff|grpc-sync} --port PORT
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

# At module level: FastAPI reads the route's annotations (strings here) in this module's
# namespace to see that `request` is the Request.
from fastapi import FastAPI, Request
from fastapi.responses import Response

ANSWER = b'{"predictions":[0]}'

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def fastapi_app() -> App:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/invocations")
    @app.post("/v2/models/{name}/infer")
    async def answer(request: Request) -> Response:
        await request.body()
        return Response(ANSWER, media_type="application/json")

    return app


def asgi_app() -> App:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": ANSWER})

    return app


def _answer() -> bytes:
    from maestro.serving.proto import grpc_predict_v2_pb2 as pb

    answer: bytes = pb.ModelInferResponse(model_name="breast-cancer").SerializeToString()
    return answer


def _same(message: bytes) -> bytes:
    return message


def _grpc_handlers(infer: Any) -> Any:
    import grpc

    from maestro.serving.grpc_tensors import SERVICE

    method = grpc.unary_unary_rpc_method_handler(
        infer, request_deserializer=_same, response_serializer=_same
    )
    return (grpc.method_handlers_generic_handler(SERVICE, {"ModelInfer": method}),)


class Handoff:
    """Answers set by another thread, as maestro serve's batcher sets them: what a call
    costs a grpcio server beyond answering inline."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.waiting: list[Any] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._run, daemon=True).start()

    def put(self, waiter: Any) -> None:
        with self.cond:
            self.waiting.append(waiter)
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.waiting:
                    self.cond.wait()
                batch, self.waiting = self.waiting, []
            for answer in batch:
                answer(self.answer)


async def serve_grpc(host: str, port: int, handoff: bool = False) -> None:
    import asyncio

    import grpc

    answer = _answer()
    loop = asyncio.get_running_loop()
    other = Handoff(answer) if handoff else None

    async def infer(request: bytes, context: Any) -> bytes:
        if other is None:
            return answer
        future: asyncio.Future[bytes] = loop.create_future()
        other.put(lambda value: loop.call_soon_threadsafe(future.set_result, value))
        return await future

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(_grpc_handlers(infer))
    server.add_insecure_port(f"{host}:{port}")
    await server.start()
    await server.wait_for_termination()


def serve_grpc_sync(host: str, port: int, threads: int = 8) -> None:
    """grpcio's thread-pool server, for comparison (maestro serve uses the asyncio one)."""
    from concurrent import futures

    import grpc

    answer = _answer()

    def infer(request: bytes, context: Any) -> bytes:
        return answer

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads))
    server.add_generic_rpc_handlers(_grpc_handlers(infer))
    server.add_insecure_port(f"{host}:{port}")
    server.start()
    server.wait_for_termination()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.serving_ceiling", description=__doc__
    )
    parser.add_argument("app", choices=("fastapi", "asgi", "grpc", "grpc-handoff", "grpc-sync"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    if args.app == "grpc-sync":
        serve_grpc_sync(args.host, args.port)
        return 0
    if args.app.startswith("grpc"):
        import asyncio

        import uvloop

        uvloop.install()  # as uvicorn's loop="uvloop" does for maestro serve
        asyncio.run(serve_grpc(args.host, args.port, handoff=args.app == "grpc-handoff"))
        return 0

    app = fastapi_app() if args.app == "fastapi" else asgi_app()
    serve_asgi(app, args.host, args.port, lifespan="on" if args.app == "fastapi" else "off")
    return 0


def serve_asgi(app: App, host: str, port: int, lifespan: str = "auto") -> None:
    """Under uvicorn as maestro serve runs: one process, uvloop and httptools, no access log."""
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan=lifespan,
        workers=1,
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    sys.exit(main())
