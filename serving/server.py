"""`maestro serve`: the app under uvicorn (uvloop, httptools, one worker, no access log),
with JSON logs, tracing when configured, and a graceful drain on SIGTERM.

On SIGTERM uvicorn stops listening, lets in-flight requests finish (up to drain_seconds),
then the app's shutdown answers whatever is still queued and flushes the prediction log and
spans; the process exits 0. Readiness turns 503 as soon as the drain starts.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from pathlib import Path
from types import FrameType

import uvicorn

from maestro.monitoring.tracing import shutdown_tracing
from maestro.serving.app import create_app
from maestro.serving.metrics import ServingMetrics
from maestro.serving.secret_files import SecretFileError, load_secret_files
from maestro.serving.settings import ServeSettings
from maestro.serving.state import ServerState
from maestro.serving.telemetry import configure_logging, tracer_provider

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app when the drain starts."""

    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self._state = state

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._state.begin_drain()
        super().handle_exit(sig, frame)


def write_termination_message(path: Path, message: str) -> None:
    """Say why the server stopped where the pod's status picks it up (the kubelet reads at
    most 4096 bytes). Outside a container the file may not be writable: then only the log
    says it."""
    try:
        path.write_text(message.encode()[:4000].decode(errors="ignore"))
    except OSError as err:
        log.debug("no termination message written to %s: %s", path, err)


def run(settings: ServeSettings) -> int:
    """Serve until SIGTERM/SIGINT (exit 0), or exit 1 when a secret file cannot be read at
    start or a model fails to load."""
    configure_logging()
    # Before anything loads: model code (and MLflow's artifact stores) may read them.
    try:
        secrets = load_secret_files(settings.secret_files, os.environ)
    except SecretFileError as err:
        log.error("exiting: %s", err)
        write_termination_message(settings.termination_message_path, str(err))
        return 1
    # MLflow draws download progress bars on stderr, which would break the JSON lines.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    provider = tracer_provider(
        os.environ,
        {
            "maestro.deployment": settings.deployment,
            "maestro.revision": settings.revision,
        },
    )
    failure: list[str] = []
    server: _Server | None = None

    def fatal(message: str) -> None:
        failure.append(message)
        if server is not None:
            server.should_exit = True

    app = create_app(settings, tracer_provider=provider, on_fatal=fatal, serve_grpc=True)
    config = uvicorn.Config(
        app,
        host=settings.listen_host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        log_config=None,
        server_header=False,
        # Client addresses are not used; X-Forwarded-* rewriting would cost every request.
        proxy_headers=False,
        timeout_graceful_shutdown=max(1, math.ceil(settings.drain_seconds)),
        timeout_keep_alive=30,
    )
    server = _Server(config, app.state.serving)
    metrics: ServingMetrics = app.state.serving.metrics
    for env in settings.secret_files:
        metrics.secret_reloads_of(env)  # exported at 0 from the start
    secrets.on_change = lambda env: metrics.secret_reloads_of(env).inc()
    stop_watching = secrets.watch(settings.secret_refresh_seconds) if secrets.files else None
    # uvicorn re-raises the signal it caught once it has shut down; with this handler in
    # place (it restores it first) that ends the drain with exit status 0, not -15.
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        log.info(
            "starting",
            extra={
                "host": settings.listen_host,
                "port": settings.port,
                "grpc_port": settings.grpc_port,
                "models": settings.named_uris(),
                "deployment": settings.deployment,
                "revision": settings.revision,
            },
        )
        server.run()
    finally:
        if stop_watching is not None:
            stop_watching()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutdown_tracing(provider)
    if failure:
        log.error("exiting: %s", failure[0])
        write_termination_message(settings.termination_message_path, failure[0])
        return 1
    log.info("stopped")
    return 0
