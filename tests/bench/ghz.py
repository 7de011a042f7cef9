"""ghz, the load generator of the gRPC rows of `make bench-serving` (wrk speaks no HTTP/2),
built from its Go module by tools/build-ghz.sh. Like wrk there: one connection per client,
each client sending its next call when the last is answered; its JSON report is read into
the figures wrk_report.lua gives for the HTTP rows."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.bench.serving_cases import BenchError

REPO = Path(__file__).resolve().parents[2]
GHZ = REPO / ".maestro" / "bin" / "ghz"
PROTO = REPO / "serving" / "proto" / "grpc_predict_v2.proto"
CALL = "inference.GRPCInferenceService/ModelInfer"


def parse_ghz(report: dict[str, Any]) -> dict[str, float]:
    """wrk's figures (tests.bench.wrk.parse_wrk) from ghz's JSON report: durations in ns,
    every call not answered OK counted as a status error."""
    percentiles = {p["percentage"]: p["latency"] for p in report.get("latencyDistribution") or []}
    if 50 not in percentiles or 99 not in percentiles:
        raise BenchError(f"ghz reported no p50/p99: {json.dumps(report)[:500]}")
    count = float(report["count"])
    ok = float((report.get("statusCodeDistribution") or {}).get("OK", 0))
    return {
        "requests": count,
        "duration_us": report["total"] / 1e3,
        "p50_us": percentiles[50] / 1e3,
        "p99_us": percentiles[99] / 1e3,
        "errors_status": count - ok,
        "errors_connect": 0.0,
        "errors_read": 0.0,
        "errors_write": 0.0,
        "errors_timeout": 0.0,
    }


def run_ghz(target: str, message_file: Path, clients: int, seconds: int) -> dict[str, float]:
    """`clients` connections with one call in flight each, for `seconds`, sending the
    serialized ModelInferRequest in `message_file`."""
    argv = [
        str(GHZ),
        "--insecure",
        "--proto",
        str(PROTO),
        "--call",
        CALL,
        "--binary-file",
        str(message_file),
        "--concurrency",
        str(clients),
        "--connections",
        str(clients),
        "--duration",
        f"{seconds}s",
        "--timeout",
        "30s",
        "--format",
        "json",
        target,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0 and not done.stdout.startswith("{"):
        raise BenchError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}{done.stdout}")
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise BenchError(
            f"ghz printed no JSON report:\n{done.stderr}{done.stdout[:2000]}"
        ) from None
    return parse_ghz(report)
