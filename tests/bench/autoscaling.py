"""`make bench-autoscaling`: how fast a ModelDeployment's HPA scales on the local platform.

The two scaling tests of tests/cluster/test_autoscaling.py (the operator deployed in the
cluster, a ModelDeployment of 1 to 3 replicas with shortened windows: scale up by at most
2 pods, down after 15 s, each per 15 s), run `--runs` times each: for a CPU target (40% of
the pod's 250m request, 4 clients at 50 requests a second each) and for a requests-per-second
target (5 per replica, 2 clients at 10 requests a second). Measured per run: the time from
load start to the first new replica Ready and to all 3 Ready, the time from load stop (a
trickle of 2 requests a second continues) back to 1 replica, and the requests that failed
during each phase. Metrics arrive every 10 s (metrics-server's resolution: two scrapes
before a new pod has a CPU figure) and the HPA controller runs every 5 s.

The third test runs a canary under the CPU test's load, split 90/10 between the stable's and
the candidate's Services as the mesh would split it, the candidate holding its 10% step: the
time until the stable's HPA has a second replica Ready, the floor the operator then held for
the stable (its HPA's minReplicas, kept for 45 s after the load stopped, longer than the
scale-down window), and the requests that failed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.bench.report import table, write_section

REPO = Path(__file__).resolve().parents[2]
TESTS = (
    "tests/cluster/test_autoscaling.py::test_cpu_target_scales_up_under_load_and_back_down",
    "tests/cluster/test_autoscaling.py::test_requests_per_second_target_scales_through_the_adapter",
    "tests/cluster/test_autoscaling.py::"
    "test_a_canary_at_10_percent_under_load_keeps_the_stable_floor_while_it_scales_up",
)


def median(runs: list[dict[str, Any]], key: str) -> str:
    values = [r[key] for r in runs if key in r]
    if not values:
        return "not reached"
    spread = f" ({min(values):.0f}-{max(values):.0f})" if len(values) > 1 else ""
    missing = f", {len(runs) - len(values)} of {len(runs)} never" if len(values) < len(runs) else ""
    return f"{statistics.median(values):.0f} s{spread}{missing}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make bench-autoscaling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as out:
        env = {**os.environ, "MAESTRO_BENCH_AUTOSCALING_OUT": out.name}
        codes = [
            subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-s", "-m", "scale", *TESTS],
                cwd=REPO,
                env=env,
            ).returncode
            for _ in range(args.runs)
        ]
        runs = [json.loads(line) for line in out.read().splitlines() if line.strip()]
    rows = []
    for label, what in (("cpu", "CPU 40%"), ("rps", "5 requests/s per replica")):
        mine = [r for r in runs if r["label"] == label]
        if not mine:
            continue
        rows.append(
            [
                what,
                str(len(mine)),
                median(mine, "first_new_replica_ready_s"),
                median(mine, "max_replicas_ready_s"),
                median(mine, "back_to_one_s"),
                f"{sum(r['up_failed'] for r in mine)} of {sum(r['up_requests'] for r in mine)}",
                f"{sum(r['down_failed'] for r in mine)} of {sum(r['down_requests'] for r in mine)}",
            ]
        )
    canary = [r for r in runs if r["label"] == "canary"]
    canary_table = (
        "\n\n"
        + table(
            [
                "canary at 10% under load",
                "runs",
                "load start to 2nd stable replica Ready (median, range)",
                "stable floor held",
                "failed requests",
            ],
            [
                [
                    "CPU 40%, 90/10 split",
                    str(len(canary)),
                    median(canary, "stable_second_replica_ready_s"),
                    ", ".join(str(r["held_floor"]) for r in canary),
                    f"{sum(r['failed'] for r in canary)} of {sum(r['requests'] for r in canary)}",
                ]
            ],
        )
        if canary
        else ""
    )
    body = (
        "## Autoscaling on the local platform (`make bench-autoscaling`)\n\n"
        + (__doc__ or "").split("\n\n", 1)[1].strip()
        + "\n\n"
        + table(
            [
                "target",
                "runs",
                "load start to 2nd replica Ready (median, range)",
                "to 3 Ready",
                "load stop to 1 replica",
                "failed scaling up",
                "failed scaling down",
            ],
            rows,
        )
        + canary_table
    )
    write_section("bench-autoscaling", body)
    print(body)
    return max(codes)


if __name__ == "__main__":
    sys.exit(main())
