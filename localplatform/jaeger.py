"""Jaeger on the local platform: the all-in-one binary (built by `make jaeger` from its Go
module, v1.76.0) on loopback, with in-memory storage (traces last as long as the process),
standing for whatever OTLP backend a production cluster has. It receives OTLP over HTTP
(4318) and gRPC (4317) and serves its query API (16686: /api/services, /api/traces).

The pods of the local platform share the host's network, so the operator and the serving
pods export to `otlp_endpoint` directly (the local overlay sets OTEL_EXPORTER_OTLP_ENDPOINT
on the operator, which passes it on to the pods it creates). The cluster starts Jaeger with
its other components and its `down` stops it.
`python -m maestro.localplatform.jaeger up|down`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maestro.localplatform.clusterconfig import ClusterConfig, ClusterError

PROCESS = "jaeger"
# Traces kept in memory; the oldest go first. Enough for a test session or a demo.
MAX_TRACES = 20000


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


@dataclass(frozen=True)
class LocalJaeger:
    """Where the platform's Jaeger listens."""

    cfg: ClusterConfig
    host: str = "127.0.0.1"
    otlp_http_port: int = field(default_factory=lambda: _port("MAESTRO_JAEGER_OTLP_PORT", 4318))
    otlp_grpc_port: int = field(
        default_factory=lambda: _port("MAESTRO_JAEGER_OTLP_GRPC_PORT", 4317)
    )
    query_port: int = field(default_factory=lambda: _port("MAESTRO_JAEGER_QUERY_PORT", 16686))
    admin_port: int = field(default_factory=lambda: _port("MAESTRO_JAEGER_ADMIN_PORT", 14269))
    # Listeners the all-in-one cannot turn off: its query gRPC API and its collector's
    # legacy (Jaeger protocol) gRPC and HTTP ports. Unused here; bound to loopback.
    query_grpc_port: int = field(
        default_factory=lambda: _port("MAESTRO_JAEGER_QUERY_GRPC_PORT", 16685)
    )
    collector_grpc_port: int = field(
        default_factory=lambda: _port("MAESTRO_JAEGER_COLLECTOR_GRPC_PORT", 14250)
    )
    collector_http_port: int = field(
        default_factory=lambda: _port("MAESTRO_JAEGER_COLLECTOR_HTTP_PORT", 14268)
    )

    @property
    def otlp_endpoint(self) -> str:
        """What OTEL_EXPORTER_OTLP_ENDPOINT names (OTLP/HTTP; /v1/traces is appended)."""
        return f"http://{self.host}:{self.otlp_http_port}"

    @property
    def query_url(self) -> str:
        return f"http://{self.host}:{self.query_port}"


def argv(jaeger: LocalJaeger) -> list[str]:
    """The all-in-one's command line: every listener on loopback."""
    host = jaeger.host
    return [
        str(jaeger.cfg.bin / "jaeger"),
        f"--collector.otlp.http.host-port={host}:{jaeger.otlp_http_port}",
        f"--collector.otlp.grpc.host-port={host}:{jaeger.otlp_grpc_port}",
        f"--collector.http-server.host-port={host}:{jaeger.collector_http_port}",
        f"--collector.grpc-server.host-port={host}:{jaeger.collector_grpc_port}",
        f"--query.http-server.host-port={host}:{jaeger.query_port}",
        f"--query.grpc-server.host-port={host}:{jaeger.query_grpc_port}",
        f"--admin.http.host-port={host}:{jaeger.admin_port}",
        f"--memory.max-traces={MAX_TRACES}",
        "--log-level=warn",
    ]


def process_env() -> dict[str, str]:
    """Jaeger traces its own query service to itself by default: not wanted here."""
    return {**os.environ, "SPAN_STORAGE_TYPE": "memory", "OTEL_TRACES_SAMPLER": "always_off"}


def get(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def ready(jaeger: LocalJaeger) -> bool:
    try:
        # {"data": null, ...} until a span arrived.
        return "data" in get(f"{jaeger.query_url}/api/services", timeout=1)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def up(cfg: ClusterConfig, timeout: float = 30) -> LocalJaeger:
    """Start Jaeger unless it runs; return once its query API answers."""
    jaeger = LocalJaeger(cfg)
    binary = cfg.bin / "jaeger"
    if not binary.is_file():
        raise ClusterError(f"missing {binary}: build it with `make jaeger` (see README)")
    procs = cfg.processes()
    procs.start(PROCESS, argv(jaeger), env=process_env())
    deadline = time.monotonic() + timeout
    while not ready(jaeger):
        if procs.pid(PROCESS) is None:
            raise ClusterError(
                f"Jaeger exited during start-up; its log ends:\n{procs.tail(PROCESS)}"
            )
        if time.monotonic() > deadline:
            raise ClusterError(
                f"Jaeger not ready after {timeout:.0f}s; its log ends:\n{procs.tail(PROCESS)}"
            )
        time.sleep(0.2)
    return jaeger


def down(cfg: ClusterConfig) -> None:
    cfg.processes().stop(PROCESS)


def find_traces(
    query_url: str,
    service: str,
    *,
    tags: Mapping[str, str] | None = None,
    operation: str | None = None,
    lookback: str = "1h",
    limit: int = 20,
) -> list[dict[str, Any]]:
    """Traces with a span of `service` (and that operation and tags) through Jaeger's HTTP
    query API (the one its UI uses): each has traceID, spans and processes."""
    params: dict[str, str] = {"service": service, "lookback": lookback, "limit": str(limit)}
    if operation:
        params["operation"] = operation
    if tags:
        params["tags"] = json.dumps(dict(tags))
    found = get(f"{query_url}/api/traces?{urllib.parse.urlencode(params)}")
    traces: list[dict[str, Any]] = found.get("data") or []
    return traces


def trace(query_url: str, trace_id: str) -> dict[str, Any] | None:
    """One whole trace by id (every service's spans), or None when Jaeger has none."""
    try:
        found = get(f"{query_url}/api/traces/{trace_id}")
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise
    data: list[dict[str, Any]] = found.get("data") or []
    return data[0] if data else None


def main(argv_: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maestro.localplatform.jaeger",
        description="Start or stop the local platform's Jaeger (OTLP in, query API out).",
    )
    parser.add_argument("command", choices=("up", "down"))
    args = parser.parse_args(argv_)
    cfg = ClusterConfig()
    try:
        if args.command == "up":
            jaeger = up(cfg)
            print(f"Jaeger: OTLP at {jaeger.otlp_endpoint}, query API at {jaeger.query_url}")
        else:
            down(cfg)
    except ClusterError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
