"""`make bench-operator`: the operator at scale, in three scenarios (about 15 minutes).

Registry: 1,000 ModelDeployments over 100 registered-model aliases that do not exist yet (the
situation of a typo, or of deployments applied before their model is promoted), on the
local control plane, with the operator as a process serving one namespace and MLflow
behind a counting proxy. Measured, in one run:

- registry requests per second in the first minute after everything is applied, and over
  the minute after that, against what one lookup per ModelDeployment per interval costs
  (the operator's behaviour before lookups were shared: 1,000 / interval);
- the operator's resident memory (VmRSS) once all 1,000 are settled;
- the time until every ModelDeployment reports ModelNotFound.

Deployments: ModelDeployments of one real registered model (a small scikit-learn pipeline,
version 1 of 2), then TrainingRuns (all admitted at once: the namespace's limit of 4
running runs is raised to the count); by default 1,000 of each at 20/s, and each table
says the count and rate its run used. They are created at that steady rate against a
fresh standalone operator whose serving and trainer pods kwok fakes (Running and Ready, on
a kwok node of the bench's own: the platform's two hold 110 pods each; the pod runner runs
none of them). Measured:

- per object, from the create request to the last of its children (Deployment, Service,
  PDB, HPA, Job...) seen by a watch: p50, p95 and max;
- the operator's resident memory (VmRSS) once all are settled;
- the operator's API writes over an idle window longer than its watch timeout (60 s, so
  the watches reconnect in it), from its own counter (maestro_operator_api_writes), and
  the Events it posted;
- after a restart: the time from the new process's start until its reconciles stop
  (every object reconciled at least once), and the writes the restart made.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from maestro.localplatform import cluster, mlflow_server
from maestro.localplatform.platform import local_operator_env
from maestro.localplatform.wait import eventually
from tests.bench import operator_scale
from tests.bench.operator_report import deployments_rows, registry_rows, trainingruns_rows
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


SCENARIOS = ("registry", "deployments", "trainingruns")
# Each scenario's last result: a scenario run alone rewrites only its own rows.
RESULTS = cluster.ClusterConfig().root / "bench" / "operator.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make bench-operator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="A quick run: make bench-operator BENCH_ARGS='--deployments 100 --runs 100"
        " --window 70'. The section of docs/benchmarks.md is written from the last result"
        " of each scenario (kept in .maestro/bench/operator.json).",
    )
    parser.add_argument(
        "--scenario",
        choices=[*SCENARIOS, "all", "report"],
        default="all",
        help="which to run (report: none, only rewrite the section from the kept results)",
    )
    parser.add_argument(
        "--deployments", type=int, default=1000, help="ModelDeployments per scenario"
    )
    parser.add_argument("--runs", type=int, default=1000, help="TrainingRuns")
    parser.add_argument(
        "--models", type=int, default=100, help="distinct missing models (registry scenario)"
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, help="registry poll interval, seconds"
    )
    parser.add_argument(
        "--rate", type=float, default=20.0, help="objects created per second (steady state)"
    )
    parser.add_argument(
        "--window",
        type=float,
        default=90.0,
        help="seconds per measurement window (registry: each minute; idle: keep it above"
        " the 60 s watch timeout)",
    )
    args = parser.parse_args(argv)
    # SIGTERM (a timeout, make interrupted) unwinds like Ctrl-C: namespaces and models go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    faulthandler.register(signal.SIGUSR1)  # where a stuck run waits: kill -USR1 <pid>
    results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    chosen = {"all": SCENARIOS, "report": ()}.get(args.scenario, (args.scenario,))
    for scenario in chosen:
        if scenario == "registry":
            r = run(args.deployments, args.models, args.interval, min(args.window, 60.0))
            results[scenario] = {**r, "deployments": args.deployments,
                                 "models": args.models, "interval": args.interval}  # fmt: skip
        elif scenario == "deployments":
            results[scenario] = operator_scale.deployments(args.deployments, args.rate, args.window)
        else:
            results[scenario] = operator_scale.trainingruns(args.runs, args.rate, args.window)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1))
    body = (
        "## Operator at scale (`make bench-operator`)\n\n"
        + (__doc__ or "").split("\n\n", 1)[1].strip()
    )
    if "registry" in results:
        body += "\n\n### Registry requests (missing models)\n\n" + table(
            ["measure", "value", "against per-ModelDeployment polling"],
            registry_rows(results["registry"]),
        )
    for scenario, title, rows in (
        ("deployments", "ModelDeployments", deployments_rows),
        ("trainingruns", "TrainingRuns", trainingruns_rows),
    ):
        if scenario in results:
            body += f"\n\n### {title}\n\n" + table(
                ["measure", "value", "goal", "met"], rows(results[scenario])
            )
    write_section("bench-operator", body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
