"""`make bench-training`: the platform's cost of a hyperparameter search.

One run, side by side, the same search (a random forest on scikit-learn's breast-cancer
data, 20 trials, TPE, 2 at a time):

- **Optuna alone**: one process, `study.optimize(n_jobs=2)`, in-memory storage, calling
  the same trainer functions `maestro train` calls — no pods, no MLflow, no database;
  timed in this process (search only) and as a process of its own (spawn to exit).
- **Maestro**: a TrainingRun applied to the local control plane; the operator creates the
  MLflow parent run, the Optuna study on PostgreSQL and an Indexed Job of 2 worker pods,
  which the pod runner really runs; every trial is a nested MLflow run with its model.

Overhead per trial = (for each worker pod: its last trial's result recorded in Optuna
minus the pod's start) summed over pods, minus the summed wall time of the trials' own
training (`fit_seconds`), divided by the trials.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import optuna

from maestro.localplatform import cluster, mlflow_server, platform
from maestro.localplatform.wait import eventually
from maestro.training.tuning import storage_url
from tests.bench.optuna_alone import DATASET, PARAMS, optuna_alone, tuning_spec
from tests.bench.report import table, write_section

OPTUNA_DB = "postgresql://maestro:maestro@127.0.0.1:5432/optuna"


def optuna_alone_process(trials: int, jobs: int) -> float:
    """Wall time of the same search as a process of its own, from spawn to exit."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tests.bench.optuna_alone", f"--trials={trials}", f"--jobs={jobs}"],
        check=True,
        cwd=cluster.REPO,
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def _time(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def maestro_search(trials: int, parallelism: int) -> dict[str, float]:
    cfg = cluster.ClusterConfig()
    cluster.up(cfg)
    mlflow_server.up(mlflow_server.MlflowConfig())
    platform.deploy_operator(cfg)
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    cluster.kubectl(cfg, "create", "namespace", namespace)
    try:
        run = {
            "apiVersion": "mlops.maestro.dev/v1alpha1",
            "kind": "TrainingRun",
            "metadata": {"name": "bench", "namespace": namespace},
            "spec": {
                "framework": "SKLearn",
                "params": PARAMS,
                "dataset": {"uri": DATASET},
                "mlflow": {"experiment": f"bench-training-{namespace}"},
                "tuning": tuning_spec(trials, parallelism),
            },
        }
        started = time.perf_counter()
        cluster.kubectl(cfg, "apply", "-f", "-", input=json.dumps(run))

        def finished() -> dict[str, Any] | None:
            out = cluster.kubectl(cfg, "get", "trainingrun", "bench", "-n", namespace, "-o", "json")
            obj: dict[str, Any] = json.loads(out.stdout)
            phase = (obj.get("status") or {}).get("phase")
            if phase == "Failed":
                raise RuntimeError(f"benchmark run failed: {obj['status']}")
            return obj if phase == "Succeeded" else None

        obj = eventually(finished, timeout=600, what="TrainingRun Succeeded", interval=0.2)
        wall = time.perf_counter() - started
        study = optuna.load_study(
            study_name=f"trainingrun-{obj['metadata']['uid']}", storage=storage_url(OPTUNA_DB)
        )
        pods = json.loads(
            cluster.kubectl(
                cfg,
                "get",
                "pods",
                "-n",
                namespace,
                "-l",
                "batch.kubernetes.io/job-name",
                "-o",
                "json",
            ).stdout
        )["items"]
        job = json.loads(cluster.kubectl(cfg, "get", "jobs", "-n", namespace, "-o", "json").stdout)[
            "items"
        ][0]
        timeline = _timeline(obj, job, pods)
        return {"wall": wall, **_overhead(study, pods), **timeline, "best": float(study.best_value)}
    finally:
        cluster.kubectl(cfg, "delete", "namespace", namespace, "--wait=false", check=False)
        platform.remove_operator(cfg)


def _timeline(
    run: dict[str, Any], job: dict[str, Any], pods: list[dict[str, Any]]
) -> dict[str, float]:
    """Where the wall time goes, from the objects' own timestamps (1 s resolution)."""
    created = _time(run["metadata"]["creationTimestamp"])
    states = [p["status"]["containerStatuses"][0]["state"]["terminated"] for p in pods]
    first_pod = min(_time(s["startedAt"]) for s in states)
    last_pod = max(_time(s["finishedAt"]) for s in states)
    return {
        "to_job": _time(job["metadata"]["creationTimestamp"]) - created,
        "to_pods": first_pod - created,
        "pods": last_pod - first_pod,
        "after_pods": _time(run["status"]["completionTime"]) - last_pod,
    }


def _overhead(study: optuna.Study, pods: list[dict[str, Any]]) -> dict[str, float]:
    done = [t for t in study.trials if t.datetime_complete is not None]
    by_worker: dict[str, list[optuna.trial.FrozenTrial]] = {}
    for trial in done:
        by_worker.setdefault(str(trial.user_attrs.get("worker")), []).append(trial)
    starts = {
        p["metadata"]["name"]: _time(
            p["status"]["containerStatuses"][0]["state"]["terminated"]["startedAt"]
        )
        for p in pods
    }
    spans, fits, first_trial_delays = 0.0, 0.0, []
    for worker, worker_trials in by_worker.items():
        if worker not in starts:
            raise RuntimeError(f"trials name worker {worker!r}, not one of the pods {list(starts)}")
        last = max(t.datetime_complete.timestamp() for t in worker_trials)  # type: ignore[union-attr]
        first = min(t.datetime_start.timestamp() for t in worker_trials)  # type: ignore[union-attr]
        spans += last - starts[worker]
        first_trial_delays.append(first - starts[worker])
        fits += sum(float(t.user_attrs["fit_seconds"]) for t in worker_trials)
    bookkeeping = [
        (t.datetime_complete - t.datetime_start).total_seconds()
        - float(t.user_attrs["fit_seconds"])  # type: ignore[operator]
        for t in done
    ]
    return {
        "trials": float(len(done)),
        "overhead_per_trial": (spans - fits) / len(done),
        "worker_start": statistics.mean(first_trial_delays),
        "bookkeeping_per_trial": statistics.mean(bookkeeping),
        "fit_per_trial": fits / len(done),
    }


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make bench-training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs alone")
    args = parser.parse_args(argv)

    print(f"Optuna alone: {args.trials} trials, n_jobs={args.parallelism} ...", flush=True)
    alone = optuna_alone(args.trials, args.parallelism)
    alone_process = optuna_alone_process(args.trials, args.parallelism)
    print(
        f"Maestro TrainingRun: {args.trials} trials, parallelism {args.parallelism} ...", flush=True
    )
    ours = maestro_search(args.trials, args.parallelism)
    ratio = ours["wall"] / alone["wall"]
    process_ratio = ours["wall"] / alone_process
    body = "\n".join(
        [
            "## Training: a 20-trial search (`make bench-training`)",
            "",
            f"Random forest on scikit-learn's breast-cancer data, {args.trials} trials, TPE, "
            f"{args.parallelism} at a time; measured {dt.date.today().isoformat()}.",
            "",
            table(
                ["", "Optuna alone (1 process, n_jobs=2)", "Maestro TrainingRun (2 worker pods)"],
                [
                    ["wall time of the search", f"{alone['wall']:.1f} s", f"{ours['wall']:.1f} s"],
                    ["ratio to Optuna alone", "1.00x", f"{ratio:.2f}x"],
                    [
                        "wall time with process start and imports",
                        f"{alone_process:.1f} s",
                        f"{ours['wall']:.1f} s (pods included)",
                    ],
                    ["ratio to that", "1.00x", f"{process_ratio:.2f}x"],
                    ["best accuracy", f"{alone['best']:.4f}", f"{ours['best']:.4f}"],
                ],
            ),
            "",
            table(
                ["Maestro per-trial figures", "seconds"],
                [
                    [
                        "overhead per trial (pod start to result recorded, minus training)",
                        f"{ours['overhead_per_trial']:.3f}",
                    ],
                    [
                        "of which: worker start (pod start to first trial)",
                        f"{ours['worker_start']:.2f}",
                    ],
                    [
                        "of which: bookkeeping per trial (MLflow nested run, model, Optuna)",
                        f"{ours['bookkeeping_per_trial']:.3f}",
                    ],
                    ["training itself per trial (fit + evaluate)", f"{ours['fit_per_trial']:.3f}"],
                    ["TrainingRun created to its Job created", f"{ours['to_job']:.0f}"],
                    ["TrainingRun created to first worker pod started", f"{ours['to_pods']:.0f}"],
                    ["first worker pod started to last worker pod ended", f"{ours['pods']:.0f}"],
                    ["last worker pod ended to TrainingRun Succeeded", f"{ours['after_pods']:.0f}"],
                ],
            ),
            "",
            "Goals: overhead under 1 s per trial"
            f" ({_verdict(ours['overhead_per_trial'] < 1.0)}: {ours['overhead_per_trial']:.2f} s);"
            f" the whole search within 1.5x of Optuna alone ({_verdict(ratio <= 1.5)}:"
            f" {ratio:.2f}x; {process_ratio:.2f}x against the search as a whole process, which"
            " pays for its interpreter and imports as each worker pod does).",
            "",
            "Where the time goes (profiled): a worker pod's start is mostly Python importing",
            "scikit-learn (with SciPy and pandas), MLflow and Optuna, about 3.8 s for one",
            "process on this machine, paid by both workers at once on its 2 cores, then the data,",
            "the study and the MLflow experiment. With 10 trials per worker that fixed cost, plus",
            "the control plane's seconds from TrainingRun to running pod, is what the ratio",
            "measures;",
            "per trial the bookkeeping (a nested MLflow run: create, one log_batch, terminate;",
            "Optuna ask/tell and a heartbeat) is a fraction of the training. Models are logged",
            "once per worker, at its end, only for trials on the study's front, in MLflow's",
            "cloudpickle format (skops, opt-in, costs seconds of imports per worker).",
            "",
            "Measure with the services warm: in the first seconds after MLflow's server starts,",
            "its five job-queue consumer processes import MLflow on the same 2 cores (a run",
            "started then took 26.8 s; on warm services runs took 11 to 16 s).",
        ]
    )
    print(body)
    if not args.no_write:
        write_section("bench-training", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
