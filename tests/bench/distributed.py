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
OVERRIDES: dict[str, Any] = {}  # --params
FIT = re.compile(r"rank 0 of \d+ trained on (\d+) rows per epoch in ([0-9.]+) s")


def run_once(
    cfg: cluster.ClusterConfig, namespace: str, workers: int, threads: int | None = None
) -> dict[str, float]:
    name = f"ddp-{workers}" + (f"-t{threads}" if threads else "")
    params = PARAMS if threads is None else {**PARAMS, "threads": threads}
    params = {**params, **OVERRIDES}
    run = {
        "apiVersion": "mlops.maestro.dev/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "framework": "PyTorch",
            "workers": workers,
            "params": params,
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
    parser.add_argument("--params", default="{}", help="JSON params over the defaults")
    args = parser.parse_args(argv)
    OVERRIDES.update(json.loads(args.params))
    PARAMS.update(OVERRIDES)
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
        print("the same with 1 intra-op thread per replica ...", flush=True)
        one_t = run_once(cfg, namespace, 1, threads=1)
        two_t = run_once(cfg, namespace, 2, threads=1)
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
                    [
                        "training loop, `params.threads: 1` per replica",
                        f"{one_t['fit']:.1f} s",
                        f"{two_t['fit']:.1f} s",
                        f"{one_t['fit'] / two_t['fit']:.2f}x",
                    ],
                    [
                        "created to Succeeded, `params.threads: 1`",
                        f"{one_t['wall']:.1f} s",
                        f"{two_t['wall']:.1f} s",
                        f"{one_t['wall'] / two_t['wall']:.2f}x",
                    ],
                ],
            ),
            "",
            "What limits it here: the machine has 2 cores. By default PyTorch gives each",
            "replica one intra-op thread per core it sees (the machine's, not the pod's CPU",
            "share), so two replicas run 4 busy threads on 2 cores and spin against each other",
            "at every step: that is the default-threads row. With `params.threads: 1` each",
            "replica keeps to one core, and 2 workers come close to 1; they do not beat it,",
            "because this MLP's compute per step is small next to what DDP adds: a gloo",
            "all-reduce of the gradients (0.3 MB) at every step, a barrier that makes the",
            "faster replica wait for the slower, and rank 0's evaluation and MLflow logging",
            "after every epoch while the other waits, on cores the control plane and MLflow",
            "share. A wider model (512, 512) with batch 256 measured the same (0.87x with one",
            "thread each). The seeds' 1.5-2x with 2 workers assumes each worker brings cores",
            "of its own (a node each, as on a real cluster), which one 2-core machine cannot",
            "show.",
        ]
    )
    print(body)
    if not args.no_write:
        write_section("bench-training-ddp", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
