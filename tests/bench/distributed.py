"""`make bench-training` (second part): the same PyTorch TrainingRun with 1 and with 2
workers, through Kubeflow's training operator on the local platform.

An MLP (256, 256) on scikit-learn's digits (1,797 rows x 64 features, 10 classes), 30 epochs,
batch 64 per replica, run with `workers: 1` (one Master pod) and `workers: 2` (Master and
Worker pods, DDP over gloo: each replica trains on half the rows per epoch and all-reduces
the gradients at every step). Figures per run: wall time from the TrainingRun's creation to
Succeeded, and the training loop's own time on rank 0 (`fit_seconds`, from its log).
Speedup = 1-worker time / 2-worker time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
import uuid
from typing import Any

from maestro.localplatform import cluster, mlflow_server, platform
from maestro.localplatform.wait import eventually
from tests.bench.report import table, write_section

PARAMS = {"hidden_sizes": "256,256", "epochs": 30, "batch_size": 64, "lr": 0.001}
DATASET = "sklearn://digits"
FIT = re.compile(r"rank 0 of \d+ trained on (\d+) rows per epoch in ([0-9.]+) s")


def run_once(cfg: cluster.ClusterConfig, namespace: str, workers: int) -> dict[str, float]:
    name = f"ddp-{workers}"
    run = {
        "apiVersion": "mlops.maestro.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "framework": "PyTorch",
            "workers": workers,
            "params": PARAMS,
            "dataset": {"uri": DATASET},
            "mlflow": {"experiment": f"bench-ddp-{namespace}"},
            "backoffLimit": 0,
        },
    }
    started = time.perf_counter()
    cluster.kubectl(cfg, "apply", "-f", "-", input=json.dumps(run))

    def finished() -> dict[str, Any] | None:
        out = cluster.kubectl(cfg, "get", "trainingrun", name, "-n", namespace, "-o", "json")
        obj: dict[str, Any] = json.loads(out.stdout)
        phase = (obj.get("status") or {}).get("phase")
        if phase == "Failed":
            raise RuntimeError(f"benchmark run failed: {obj['status']}")
        return obj if phase == "Succeeded" else None

    obj = eventually(finished, timeout=900, what=f"{name} Succeeded", interval=0.5)
    wall = time.perf_counter() - started
    job = obj["status"]["jobRef"]["name"]
    pods = json.loads(
        cluster.kubectl(
            cfg,
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            f"training.kubeflow.org/job-name={job}",
            "-o",
            "json",
        ).stdout
    )["items"]
    master = next(p for p in pods if p["metadata"]["name"].endswith("-master-0"))
    found = FIT.findall(cfg.pod_log(master, "pytorch").read_text())
    if not found:
        raise RuntimeError(f"no training time in the log of {master['metadata']['name']}")
    rows, fit = found[-1]
    return {
        "wall": wall,
        "fit": float(fit),
        "rows": float(rows),
        "accuracy": float(obj["status"]["metrics"]["accuracy"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make bench-training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs alone")
    args = parser.parse_args(argv)
    cfg = cluster.ClusterConfig()
    cluster.up(cfg)
    mlflow_server.up(mlflow_server.MlflowConfig())
    platform.deploy_operator(cfg)
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    cluster.kubectl(cfg, "create", "namespace", namespace)
    try:
        print("PyTorch TrainingRun, 1 worker ...", flush=True)
        one = run_once(cfg, namespace, 1)
        print("PyTorch TrainingRun, 2 workers ...", flush=True)
        two = run_once(cfg, namespace, 2)
    finally:
        cluster.kubectl(cfg, "delete", "namespace", namespace, "--wait=false", check=False)
        platform.remove_operator(cfg)
    body = "\n".join(
        [
            "## Distributed PyTorch: 1 vs 2 workers (`make bench-training`)",
            "",
            f"MLP {PARAMS['hidden_sizes']} on scikit-learn's digits, {PARAMS['epochs']} epochs,"
            f" batch {PARAMS['batch_size']} per replica, through Kubeflow's training operator"
            f" (PyTorchJob; 2 workers: DDP over gloo); {os.cpu_count()} CPUs;"
            f" measured {dt.date.today().isoformat()}.",
            "",
            table(
                ["", "1 worker", "2 workers", "speedup"],
                [
                    [
                        "training loop on rank 0",
                        f"{one['fit']:.1f} s",
                        f"{two['fit']:.1f} s",
                        f"{one['fit'] / two['fit']:.2f}x",
                    ],
                    [
                        "TrainingRun created to Succeeded",
                        f"{one['wall']:.1f} s",
                        f"{two['wall']:.1f} s",
                        f"{one['wall'] / two['wall']:.2f}x",
                    ],
                    [
                        "rows per replica per epoch",
                        f"{one['rows']:.0f}",
                        f"{two['rows']:.0f}",
                        "",
                    ],
                    ["held-out accuracy", f"{one['accuracy']:.4f}", f"{two['accuracy']:.4f}", ""],
                ],
            ),
        ]
    )
    print(body)
    if not args.no_write:
        write_section("bench-training-ddp", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
