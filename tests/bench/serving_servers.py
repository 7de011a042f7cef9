"""The servers `make bench-serving` measures, one process group each: how each is started on
its port (18200-18299), when it counts as ready, and the check that it predicts what the native
pipeline does before any load is sent."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.bench.serving_cases import (
    CELLS,
    MODEL_NAME,
    BenchError,
    Data,
    grpc_message,
    grpc_predictions,
    predictions,
    request,
    url_path,
)

REPO = Path(__file__).resolve().parents[2]
WORK = REPO / ".maestro" / "bench"
MLSERVER_VENV = WORK / "mlserver-venv"
PORTS = {
    "floor": 18201,
    "maestro": 18202,
    "mlflow": 18203,
    "mlserver": 18204,
    "fastapi": 18208,
    "asgi": 18209,
    "grpc": 18210,
}
MLSERVER_GRPC_PORT, MLSERVER_METRICS_PORT = 18205, 18206
MAESTRO_GRPC_PORT = 18207


@dataclass(frozen=True)
class Server:
    key: str
    label: str
    argv: list[str]
    protocols: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    # False for the ceilings, which answer the same fixed document to every request.
    predicts: bool = True

    @property
    def port(self) -> int:
        return PORTS[self.key]

    @property
    def grpc_port(self) -> int:
        return MAESTRO_GRPC_PORT if self.key == "maestro" else self.port

    @property
    def extra_ports(self) -> tuple[int, ...]:
        if self.key == "mlserver":
            return (MLSERVER_GRPC_PORT, MLSERVER_METRICS_PORT)
        return (MAESTRO_GRPC_PORT,) if self.key == "maestro" else ()


def ceiling(venv_bin: Path, key: str, label: str) -> Server:
    argv = [str(venv_bin / "python"), "-m", "tests.bench.serving_ceiling", key]
    protocols = ("grpc",) if key == "grpc" else ("invocations", "v2")
    return Server(key, label, [*argv, "--port", str(PORTS[key])], protocols, predicts=False)


def servers(venv_bin: Path, model_dir: Path) -> dict[str, Server]:
    return {
        "fastapi": ceiling(venv_bin, "fastapi", "no-op FastAPI endpoint (the framework's ceiling)"),
        "asgi": ceiling(venv_bin, "asgi", "no-op bare ASGI endpoint (uvicorn's ceiling)"),
        "grpc": ceiling(venv_bin, "grpc", "no-op grpcio asyncio server (gRPC's ceiling)"),
        "floor": Server(
            "floor",
            "floor (native predict + loopback HTTP)",
            [
                str(venv_bin / "python"),
                "-m",
                "tests.bench.serving_floor",
                str(model_dir),
                "--port",
                str(PORTS["floor"]),
            ],
            ("invocations",),
        ),
        "maestro": Server(
            "maestro",
            "maestro serve",
            [
                str(venv_bin / "maestro"),
                "serve",
                "--model-uri",
                model_dir.as_uri(),
                "--model-name",
                MODEL_NAME,
                "--host",
                "127.0.0.1",
                "--port",
                str(PORTS["maestro"]),
                "--grpc-port",
                str(MAESTRO_GRPC_PORT),
            ],
            ("invocations", "v2", "v2-binary", "grpc"),
            # The labels its metrics carry; no prediction log, as no peer writes one.
            {
                "MAESTRO_DEPLOYMENT": "bench",
                "MAESTRO_REVISION": "bench",
                "MAESTRO_MODEL_VERSION": "",
            },
        ),
        "mlflow": Server(
            "mlflow",
            "mlflow models serve",
            [
                str(venv_bin / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model_dir),
                "--env-manager",
                "local",
                "--workers",
                "1",
                "--host",
                "127.0.0.1",
                "--port",
                str(PORTS["mlflow"]),
            ],
            ("invocations",),
        ),
        "mlserver": Server(
            "mlserver",
            "MLServer + MLflow runtime",
            [str(MLSERVER_VENV / "bin" / "mlserver"), "start", str(WORK / "mlserver")],
            ("v2",),
        ),
    }


def write_mlserver_settings(folder: Path, model_dir: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "host": "127.0.0.1",
        "http_port": PORTS["mlserver"],
        "grpc_port": MLSERVER_GRPC_PORT,
        "metrics_port": MLSERVER_METRICS_PORT,
        # Inference in the server's own process: one worker process, like the others.
        "parallel_workers": 0,
    }
    model = {
        "name": MODEL_NAME,
        "implementation": "mlserver_mlflow.MLflowRuntime",
        "parameters": {"uri": str(model_dir)},
    }
    (folder / "settings.json").write_text(json.dumps(settings, indent=2))
    (folder / "model-settings.json").write_text(json.dumps(model, indent=2))


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def running(server: Server, log_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """The server as a process group of its own, stopped (TERM, then KILL) on the way out."""
    for port in (server.port, *server.extra_ports):
        if port_in_use(port):
            raise BenchError(
                f"{server.label}: port {port} is already taken; stop what listens there "
                "(this benchmark uses 18200-18299)"
            )
    log_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **server.env}
    env.pop("MAESTRO_BIND_HOST", None)
    # `mlflow models serve` runs `uvicorn` by name: the venv's bin must be on PATH.
    env["PATH"] = os.pathsep.join([str(Path(server.argv[0]).parent), env.get("PATH", "")])
    with (log_dir / f"{server.key}.log").open("wb") as log:
        proc = subprocess.Popen(
            server.argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue


def log_tail(server: Server, log_dir: Path, lines: int = 25) -> str:
    try:
        text = (log_dir / f"{server.key}.log").read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_ready(
    server: Server, proc: subprocess.Popen[bytes], data: Data, log_dir: Path, timeout: float
) -> float:
    """Seconds from start until the server answers a prediction with 200 (a gRPC-only
    server: until ModelInfer answers OK)."""
    protocol = server.protocols[0]
    if protocol == "grpc":
        return wait_grpc_ready(server, proc, data, log_dir, timeout)
    url = f"http://127.0.0.1:{server.port}{url_path(protocol)}"
    content, headers = request(protocol, data, 1)
    started = time.monotonic()
    last = "no answer yet"
    with httpx.Client(timeout=5) as client:
        while time.monotonic() - started < timeout:
            if proc.poll() is not None:
                raise BenchError(
                    f"{server.label} exited with status {proc.returncode} before answering; "
                    f"its log ends:\n{log_tail(server, log_dir)}"
                )
            try:
                answer = client.post(url, content=content, headers=headers)
                if answer.status_code == 200:
                    return time.monotonic() - started
                last = f"HTTP {answer.status_code}: {answer.text[:300]}"
            except httpx.TransportError as exc:
                last = type(exc).__name__
            time.sleep(0.25)
    raise BenchError(
        f"{server.label} did not answer POST {url} with 200 within {timeout:.0f} s "
        f"(last: {last}); its log ends:\n{log_tail(server, log_dir)}"
    )


def wait_grpc_ready(
    server: Server, proc: subprocess.Popen[bytes], data: Data, log_dir: Path, timeout: float
) -> float:
    import grpc

    started = time.monotonic()
    last = "no answer yet"
    target = f"127.0.0.1:{server.grpc_port}"
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            raise BenchError(
                f"{server.label} exited with status {proc.returncode} before answering; "
                f"its log ends:\n{log_tail(server, log_dir)}"
            )
        with grpc.insecure_channel(target) as channel:
            call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
            try:
                call(grpc_message(data, 1), timeout=5)
                return time.monotonic() - started
            except grpc.RpcError as err:
                last = str(err.code())
        time.sleep(0.25)
    raise BenchError(f"{server.label} did not answer ModelInfer at {target} (last: {last})")


def check_answers(server: Server, data: Data) -> None:
    """Every protocol, one row and 100 rows: the same labels as the native pipeline."""
    if not server.predicts:
        return
    with httpx.Client(timeout=30) as client:
        for protocol in server.protocols:
            if protocol == "grpc":
                check_grpc_answers(server, data)
                continue
            for rows in sorted({c.rows for c in CELLS}):
                url = f"http://127.0.0.1:{server.port}{url_path(protocol)}"
                content, headers = request(protocol, data, rows)
                answer = client.post(url, content=content, headers=headers)
                if answer.status_code != 200:
                    raise BenchError(
                        f"{server.label} ({protocol}, {rows} rows): HTTP {answer.status_code} "
                        f"from {url}: {answer.text[:500]}"
                    )
                try:
                    got = predictions(protocol, answer.content, answer.headers)
                except (KeyError, IndexError, TypeError, ValueError) as exc:
                    raise BenchError(
                        f"{server.label} ({protocol}): unreadable answer ({exc!r}): "
                        f"{answer.text[:500]}"
                    ) from exc
                if got != data.expected[:rows]:
                    raise BenchError(
                        f"{server.label} ({protocol}, {rows} rows) predicted {got[:10]}..., "
                        f"the native pipeline {data.expected[:10]}..."
                    )


def check_grpc_answers(server: Server, data: Data) -> None:
    """The gRPC endpoint, one row and 100 rows, as check_answers does for HTTP."""
    import grpc

    target = f"127.0.0.1:{server.grpc_port}"
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        for rows in sorted({c.rows for c in CELLS}):
            try:
                answer = call(grpc_message(data, rows), timeout=30)
            except grpc.RpcError as err:
                raise BenchError(
                    f"{server.label} (grpc, {rows} rows): {err.code()} from {target}: "
                    f"{err.details()}"
                ) from None
            got = grpc_predictions(answer)
            if got != data.expected[:rows]:
                raise BenchError(
                    f"{server.label} (grpc, {rows} rows) predicted {got[:10]}..., "
                    f"the native pipeline {data.expected[:10]}..."
                )
