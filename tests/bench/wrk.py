"""wrk, the load generator of `make bench-serving`, driven through wrk_report.lua, whose one
`maestro-wrk key=value ...` line is all that is read of wrk's output."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from tests.bench.serving_cases import BenchError

LUA = Path(__file__).with_name("wrk_report.lua")


def parse_wrk(output: str) -> dict[str, float]:
    """The `maestro-wrk key=value ...` line that wrk_report.lua prints when wrk is done."""
    for line in output.splitlines():
        if line.startswith("maestro-wrk "):
            fields = dict(item.split("=", 1) for item in line.split()[1:])
            return {key: float(value) for key, value in fields.items()}
    raise BenchError(f"wrk printed no maestro-wrk line; its output:\n{output}")


def run_wrk(
    url: str,
    body_file: Path,
    clients: int,
    seconds: int,
    threads: int,
    headers: Mapping[str, str] | None = None,
) -> dict[str, float]:
    argv = [
        "wrk",
        f"-t{min(threads, clients)}",
        f"-c{clients}",
        f"-d{seconds}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        url,
    ]
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "MAESTRO_WRK_BODY": str(body_file),
            "MAESTRO_WRK_HEADERS": "\n".join(f"{k}: {v}" for k, v in (headers or {}).items()),
        },
        timeout=seconds + 60,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}{done.stdout}")
    return parse_wrk(done.stdout)
