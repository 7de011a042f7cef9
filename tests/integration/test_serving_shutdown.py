"""`maestro serve` (HTTP and gRPC) stops on SIGTERM in every state, as a real process: while
its model load hangs on an MLflow that never answers, and while MLflow refuses connections
(MLflow's client retries for minutes). A pod that outlives its grace period is killed by the
kubelet; on the local platform it was left behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from maestro.localplatform.wait import eventually
from tests.cluster.operator_process import free_port

MAESTRO = Path(sys.executable).with_name("maestro")
# The grace period a ModelDeployment's pods get (render: TERMINATION_GRACE_SECONDS) is 30 s;
# the server must be gone well within it.
STOP_WITHIN = 10.0
MODEL = ("--model-uri", "models:/iris/1")


@pytest.fixture
def silent_mlflow() -> Iterator[str]:
    """A listener that accepts connections and never answers: requests hang."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.fixture
def refusing_mlflow() -> str:
    """A port nobody listens on: every request is refused and MLflow's client retries."""
    return f"http://127.0.0.1:{free_port()}"


def serve(tracking_uri: str, log: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    port, grpc_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAESTRO_", "MLFLOW_"))}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(MAESTRO),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--grpc-port",
                str(grpc_port),
                *MODEL,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    return proc, f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}"


def grpc_ready(target: str) -> bool | None:
    """ServerReady over gRPC; None while it does not answer."""
    import grpc

    from maestro.serving.proto import grpc_predict_v2_pb2 as pb

    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(
            "/inference.GRPCInferenceService/ServerReady",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=pb.ServerReadyResponse.FromString,
        )
        try:
            return bool(call(pb.ServerReadyRequest(), timeout=1).ready)
        except grpc.RpcError:
            return None


@pytest.mark.parametrize("mlflow_state", ["silent_mlflow", "refusing_mlflow"])
def test_sigterm_while_the_model_loads_stops_the_server(
    mlflow_state: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    tracking_uri = request.getfixturevalue(mlflow_state)
    log = tmp_path / "serve.log"
    proc, url, grpc_target = serve(tracking_uri, log)
    try:

        def loading() -> bool:
            assert proc.poll() is None, log.read_text(errors="replace")
            try:
                live = httpx.get(f"{url}/v2/health/live", timeout=1).status_code == 200
                ready = httpx.get(f"{url}/v2/health/ready", timeout=1).status_code
            except httpx.HTTPError:
                return False
            # and the gRPC service, on its own port, says the same
            return live and ready == 503 and grpc_ready(grpc_target) is False

        # Alive, not ready: the load is under way (hanging or retrying).
        eventually(loading, timeout=60, what="the server loading its model")
        time.sleep(1)
        assert proc.poll() is None, "the load must still be under way"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=STOP_WITHIN + 5)
        took = time.monotonic() - started
        assert took < STOP_WITHIN, f"stopped after {took:.1f}s"
        assert code == 0, log.read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
