"""`make demo-drift`: the example DriftCheck on the demo's iris deployment, run twice
rather than waiting for the hour. First traffic like the training data (no drift), then
traffic with two features shifted (sepal width doubled, petal length +4 cm): the second
run reports exactly those two columns, Critical, and starts a retrain from iris-train.
`python -m maestro.localplatform.demo_drift [--rows 200]`."""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from typing import Any

import httpx

from maestro.localplatform import cluster
from maestro.localplatform.demo import DEMO_NAMESPACE
from maestro.localplatform.demo_traffic import ready_pods

CHECK = "iris-drift"
# column -> (factor, offset): sepal width doubled, petal length 4 cm longer.
SHIFT: dict[str, tuple[float, float]] = {
    "sepal width (cm)": (2.0, 0.0),
    "petal length (cm)": (1.0, 4.0),
}


def status(cfg: cluster.ClusterConfig) -> dict[str, Any]:
    proc = cluster.kubectl(
        cfg, "get", "driftcheck", CHECK, "-n", DEMO_NAMESPACE, "-o", "json", check=False
    )
    return json.loads(proc.stdout).get("status") or {} if proc.returncode == 0 else {}


def send(url: str, rows: list[dict[str, float]]) -> None:
    with httpx.Client(timeout=10) as http:
        for i in range(0, len(rows), 20):
            answer = http.post(f"{url}/invocations", json={"dataframe_records": rows[i : i + 20]})
            answer.raise_for_status()


def run_check(cfg: cluster.ClusterConfig, job: str, timeout: float = 180) -> dict[str, Any]:
    cluster.kubectl(
        cfg, "create", "job", "-n", DEMO_NAMESPACE, f"--from=cronjob/{CHECK}-drift", job
    )
    print(f"  started Job {job}; waiting for its result ...", flush=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = status(cfg)
        if now.get("lastJob") == job:
            return now
        time.sleep(2)
    raise SystemExit(f"no result from Job {job} in {timeout:.0f}s; see kubectl logs job/{job}")


def show(result: dict[str, Any]) -> None:
    print(
        f"  severity {result.get('severity')}, drift share {result.get('driftShare')},"
        f" drifted {result.get('driftedColumns') or 'none'}"
    )
    for col in result.get("columns") or []:
        score = "n/a" if col.get("score") is None else f"{col['score']:.4g}"
        verdict = "DRIFTED" if col["drifted"] else "stable"
        print(f"    {col['name']:<20} {col['test']:<12} score {score}  {verdict}")
    print(f"  report: {result.get('reportUri')}  MLflow run: {result.get('mlflowRunId')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maestro.localplatform.demo_drift", description=__doc__
    )
    parser.add_argument("--rows", type=int, default=200, help="normal rows to send (200)")
    args = parser.parse_args(argv)
    if args.rows <= 0:
        parser.error("--rows must be positive")
    from maestro.training.data import load_frame

    cfg = cluster.ClusterConfig()
    pods = ready_pods(cfg).get("stable") or []
    if not pods:
        print("no ready pod of the iris deployment: promote a model first (see make demo)")
        return 1
    rows = load_frame("sklearn://iris").drop(columns=["target"]).to_dict(orient="records")
    rng = random.Random(0)
    stamp = time.strftime("%H%M%S")
    print(f"sending {args.rows} predictions like the training data ...", flush=True)
    send(pods[0], [rng.choice(rows) for _ in range(args.rows)])
    time.sleep(7)  # the pods ship their log every 5 s here
    show(run_check(cfg, f"demo-normal-{stamp}"))
    shifted = []
    for _ in range(args.rows * 4):
        row = dict(rng.choice(rows))
        for column, (factor, offset) in SHIFT.items():
            row[column] = row[column] * factor + offset
        shifted.append(row)
    print(f"sending {len(shifted)} predictions with {', '.join(SHIFT)} shifted ...", flush=True)
    send(pods[0], shifted)
    time.sleep(7)
    result = run_check(cfg, f"demo-shifted-{stamp}")
    show(result)
    if result.get("lastRetrain"):
        print(f"retraining: TrainingRun {result['lastRetrain']} (its model becomes iris@candidate)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
