"""h2load (nghttp2's HTTP/2 load generator, from Debian's packages), the load generator of
the gRPC rows of `make bench-serving`.

Why h2load and not a gRPC client: the HTTP rows are driven by wrk, a C program that spends a
few microseconds of CPU per request, and wrk shares the 2 cores with the server. A gRPC
client written on a gRPC library (ghz, on grpc-go, was used before) spends several times the
server's own CPU per call there, so the gRPC rows measured the client as much as the server.
h2load is wrk's counterpart for HTTP/2: gRPC is HTTP/2 POSTs with `content-type:
application/grpc`, a 5-byte length prefix before the message, and the status in trailers.

h2load sees HTTP statuses only, and a gRPC error is an HTTP 200 with a non-zero
`grpc-status` trailer; so the run's gRPC outcomes are read from the server's own request
counter (`maestro_requests_total{protocol="grpc"}`) where it has one (tests.bench.serving),
and the answer of each server is checked with a gRPC client before it is measured.

Like wrk there: one connection per client, one call in flight on each, each client sending its
next call when the last is answered; the figures are wrk_report.lua's, p50 and p99 from
h2load's per-request log.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from tests.bench.serving_cases import BenchError

CALL_PATH = "/inference.GRPCInferenceService/ModelInfer"


def grpc_frame(message: bytes) -> bytes:
    """A gRPC message on the wire: not compressed (0), its length (big-endian), itself."""
    return b"\x00" + struct.pack(">I", len(message)) + message


def parse_log(lines: list[str], seconds: float) -> dict[str, float]:
    """wrk's figures (tests.bench.wrk.parse_wrk) from h2load's log: one line per finished
    request, `start-µs<TAB>HTTP status<TAB>duration-µs`; a status other than 200 (or -1,
    a stream reset) is an error."""
    durations: list[int] = []
    failed = 0
    for line in lines:
        try:
            _, status_text, duration_text = line.split()
            status, duration = int(status_text), int(duration_text)
        except ValueError:  # a line cut short when h2load stopped
            continue
        durations.append(duration)
        if status != 200:
            failed += 1
    if not durations:
        raise BenchError("h2load logged no finished request")
    durations.sort()
    return {
        "requests": float(len(durations)),
        "duration_us": seconds * 1e6,
        "p50_us": float(durations[len(durations) // 2]),
        "p99_us": float(durations[min(len(durations) - 1, int(len(durations) * 0.99))]),
        "errors_status": float(failed),
        "errors_connect": 0.0,
        "errors_read": 0.0,
        "errors_write": 0.0,
        "errors_timeout": 0.0,
    }


def run_h2load(
    url: str, frame_file: Path, clients: int, seconds: int, warmup: int
) -> dict[str, float]:
    """`clients` HTTP/2 connections with one call in flight each: `warmup` seconds not
    measured, then `seconds` measured, each call posting the framed message in
    `frame_file`."""
    h2load = shutil.which("h2load")
    if h2load is None:
        raise BenchError(
            "h2load is missing: install it with `apt-get install nghttp2-client`"
            " (make bench-serving does)"
        )
    with tempfile.NamedTemporaryFile(mode="r", suffix=".log") as log:
        argv = [
            h2load,
            f"--clients={clients}",
            "--max-concurrent-streams=1",
            "--threads=1",
            f"--duration={seconds}",
            f"--warm-up-time={warmup}",
            f"--data={frame_file}",
            "--header=content-type: application/grpc",
            "--header=te: trailers",
            f"--log-file={log.name}",
            url,
        ]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + warmup + 60, check=False
        )
        if done.returncode != 0:
            raise BenchError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")
        return parse_log(log.readlines(), seconds)
