"""The floor of `make bench-serving`: the least any Python model server can cost.

A bare ASGI callable under uvicorn (uvloop + httptools, one process, no framework, no
validation, no metrics) that reads an MLflow `dataframe_split` body, turns its rows into a
NumPy array and calls the native scikit-learn pipeline's `predict`. Its latency is one
loopback HTTP round trip plus JSON and the model itself, which is what a real server's
latency is compared with.

    python -m tests.bench.serving_floor MODEL_DIR --port PORT
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np

from tests.bench.serving_ceiling import serve_asgi

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def make_app(model: Any) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        status, payload = 200, b"{}"
        if scope["method"] == "POST":
            try:
                rows = json.loads(body)["dataframe_split"]["data"]
                labels = model.predict(np.asarray(rows, dtype=np.float64))
                payload = json.dumps({"predictions": labels.tolist()}).encode()
            except (ValueError, KeyError, TypeError) as exc:
                status, payload = 400, json.dumps({"error": str(exc)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.serving_floor", description=__doc__
    )
    parser.add_argument("model_dir", help="an MLflow scikit-learn model directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)

    import mlflow.sklearn

    model = mlflow.sklearn.load_model(args.model_dir)
    # The pipeline was fitted on a DataFrame; the floor predicts on a bare array on purpose.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    serve_asgi(make_app(model), args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
