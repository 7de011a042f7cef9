"""`make bench-operator`: what watching the registry costs the operator at scale.

1,000 ModelDeployments over 100 registered-model aliases that do not exist yet (the
situation of a typo, or of deployments applied before their model is promoted), on the
local control plane, with the operator as a process serving one namespace and MLflow
behind a counting proxy. Measured, in one run:

- registry requests per second in the first minute after everything is applied, and over
  the minute after that, against what one lookup per ModelDeployment per interval costs
  (the operator's behaviour before lookups were shared: 1,000 / interval);
- the operator's resident memory (VmRSS) once all 1,000 are settled;
- the time until every ModelDeployment reports ModelNotFound.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from maestro.localplatform import cluster, mlflow_server
from maestro.localplatform.platform import local_operator_env
from maestro.localplatform.wait import eventually
from tests.bench.report import table, write_section
from tests.cluster.counting_proxy import CountingProxy
from tests.cluster.operator_process import free_port

MAESTRO = Path(sys.executable).parent / "maestro"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def settled(cfg: cluster.ClusterConfig, namespace: str, count: int) -> bool:
    out = cluster.kubectl(
        cfg, "get", "modeldeployments", "-n", namespace, "-o",
        "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].reason}",
    ).stdout.split()  # fmt: skip
    return len(out) == count and set(out) == {"ModelNotFound"}


def run(deployments: int, models: int, interval: float, window: float) -> dict[str, float]:
    cfg = cluster.ClusterConfig()
    cluster.up(cfg)
    mlflow = mlflow_server.MlflowConfig()
    mlflow_server.up(mlflow)
    namespace = f"bench-op-{uuid.uuid4().hex[:6]}"
    cluster.kubectl(cfg, "create", "namespace", namespace)
    log = cfg.root / "logs" / f"bench-operator-{namespace}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with CountingProxy(mlflow.url).running() as proxy, log.open("wb") as out:
        env = local_operator_env(
            MAESTRO_MLFLOW_TRACKING_URI=proxy.url,
            MAESTRO_REGISTRY_POLL_INTERVAL=f"{interval:g}",
        )
        port = free_port()
        operator = subprocess.Popen(
            [str(MAESTRO), "operator", "--standalone", "--namespace", namespace,
             "--liveness", f"http://127.0.0.1:{port}/healthz"],
            env={**os.environ, **env, "KUBECONFIG": str(cfg.kubeconfig)},
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:

            def healthy() -> bool:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                        return True
                except OSError:
                    return False

            eventually(healthy, timeout=60, what="the operator")
            objs = [
                {
                    "apiVersion": "mlops.maestro.dev/v1alpha1",
                    "kind": "ModelDeployment",
                    "metadata": {"name": f"md-{i:04d}", "namespace": namespace},
                    "spec": {"model": {"uri": f"models:/bench-{namespace}-{i % models}@champion"}},
                }
                for i in range(deployments)
            ]
            started = time.monotonic()
            body = "\n".join(json.dumps(o) for o in objs)
            cluster.kubectl(cfg, "apply", "-f", "-", input=body)
            applied = time.monotonic()
            eventually(
                lambda: settled(cfg, namespace, deployments),
                timeout=900,
                interval=5,
                what=f"{deployments} ModelDeployments at ModelNotFound",
            )
            settle_seconds = time.monotonic() - started
            first = proxy.registry_requests()
            time.sleep(max(0.0, window - (time.monotonic() - applied)))
            first_window = proxy.registry_requests()
            first_rate = first_window / (time.monotonic() - applied)
            second_start = time.monotonic()
            time.sleep(window)
            second_rate = (proxy.registry_requests() - first_window) / (
                time.monotonic() - second_start
            )
            memory = rss_mb(operator.pid)
            return {
                "settle_seconds": settle_seconds,
                "requests_to_settle": float(first),
                "first_rate": first_rate,
                "second_rate": second_rate,
                "rss_mb": memory,
            }
        finally:
            operator.terminate()
            try:
                operator.wait(30)
            except subprocess.TimeoutExpired:
                operator.kill()
            cluster.kubectl(cfg, "delete", "namespace", namespace, "--wait=false", check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make bench-operator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--deployments", type=int, default=1000)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument(
        "--interval", type=float, default=2.0, help="registry poll interval, seconds"
    )
    parser.add_argument("--window", type=float, default=60.0, help="seconds per measurement")
    args = parser.parse_args(argv)
    r = run(args.deployments, args.models, args.interval, args.window)
    per_deployment = args.deployments / args.interval
    rows = [
        ["ModelDeployments / distinct models", f"{args.deployments} / {args.models}", ""],
        ["registry poll interval", f"{args.interval:g} s", ""],
        ["time until all report ModelNotFound", f"{r['settle_seconds']:.0f} s", ""],
        ["registry requests until then", f"{r['requests_to_settle']:.0f}", ""],
        [
            "registry requests/s, first minute",
            f"{r['first_rate']:.2f}",
            f"{per_deployment / max(r['first_rate'], 1e-9):.0f}x fewer than one per"
            f" ModelDeployment per interval ({per_deployment:.0f}/s)",
        ],
        [
            "registry requests/s, second minute",
            f"{r['second_rate']:.2f}",
            f"{per_deployment / max(r['second_rate'], 1e-9):.0f}x fewer",
        ],
        ["operator memory (VmRSS)", f"{r['rss_mb']:.0f} MB", ""],
    ]
    body = (
        "## Operator at scale (`make bench-operator`)\n\n"
        + (__doc__ or "").split("\n\n", 1)[1].strip()
        + "\n\n"
        + table(["measure", "value", "against per-ModelDeployment polling"], rows)
    )
    write_section("bench-operator", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
