"""`make demo-traffic`: users of the demo's iris ModelDeployment. Each request carries a
user id (the example ABTest splits by `x-user-id`), goes to a serving pod of the champion
(where a mesh would route it), and its outcome, whether the answer was the right iris
class, is reported through /feedback on a pod of the deployment a moment later; the
ABTest's figures move as they arrive. Stops after --seconds or at the test's decision.
`python -m maestro.localplatform.demo_traffic [--seconds 300]`."""

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

DEPLOYMENT = "iris"
ABTEST = "iris-candidate"


def ready_pods(cfg: cluster.ClusterConfig) -> dict[str, list[str]]:
    """ "stable" (the revision serving the deployment) or another revision name -> base URLs
    of the deployment's ready pods."""
    md = cluster.kubectl(
        cfg, "get", "md", DEPLOYMENT, "-n", DEMO_NAMESPACE, "-o", "json", check=False
    )
    stable = (
        (json.loads(md.stdout).get("status") or {}).get("stableRevision") if md.stdout else None
    )
    out = cluster.kubectl(
        cfg,
        "get",
        "pods",
        "-n",
        DEMO_NAMESPACE,
        "-l",
        f"mlops.maestro.dev/deployment={DEPLOYMENT}",
        "-o",
        "json",
    ).stdout
    found: dict[str, list[str]] = {}
    for pod in json.loads(out)["items"]:
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        if conditions.get("Ready") != "True" or pod["metadata"].get("deletionTimestamp"):
            continue
        revision = pod["metadata"]["labels"].get("mlops.maestro.dev/revision", "")
        role = "stable" if revision == stable else revision
        found.setdefault(role, []).append(f"http://{pod['status']['podIP']}:8080")
    return found


def abtest_status(cfg: cluster.ClusterConfig) -> dict[str, Any]:
    proc = cluster.kubectl(
        cfg, "get", "abtest", ABTEST, "-n", DEMO_NAMESPACE, "-o", "json", check=False
    )
    return json.loads(proc.stdout).get("status") or {} if proc.returncode == 0 else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maestro.localplatform.demo_traffic", description=__doc__
    )
    parser.add_argument("--seconds", type=float, default=300, help="how long (default 300)")
    parser.add_argument("--users", type=int, default=500, help="distinct user ids (500)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.users <= 0:
        parser.error("--seconds and --users must be positive")
    from maestro.training.data import load_frame

    frame = load_frame("sklearn://iris")
    rows = frame.drop(columns=["target"]).to_dict(orient="records")
    labels = frame["target"].tolist()
    cfg = cluster.ClusterConfig()
    rng = random.Random(0)
    sent = answered = reported = 0
    by_variant: dict[str, int] = {}
    end = time.monotonic() + args.seconds
    next_report = time.monotonic()
    with httpx.Client(timeout=10) as http:
        while time.monotonic() < end:
            pods = ready_pods(cfg)
            champions = pods.get("stable") or []
            if not champions:
                print("no ready pod of the iris deployment yet: promote a model first")
                time.sleep(5)
                continue
            everyone = [url for urls in pods.values() for url in urls]
            for _ in range(50):
                i = rng.randrange(len(rows))
                headers = {"x-user-id": f"user-{rng.randrange(args.users)}"}
                answer = http.post(
                    f"{rng.choice(champions)}/invocations",
                    json={"dataframe_records": [rows[i]]},
                    headers=headers,
                )
                sent += 1
                if answer.status_code != 200:
                    continue
                answered += 1
                variant = answer.headers.get("x-maestro-variant", "champion")
                by_variant[variant] = by_variant.get(variant, 0) + 1
                correct = int(answer.json()["predictions"][0]) == int(labels[i])
                feedback = {"request_id": answer.headers["x-request-id"], "outcome": correct}
                if http.post(f"{rng.choice(everyone)}/feedback", json=feedback).is_success:
                    reported += 1
            if time.monotonic() >= next_report:
                status = abtest_status(cfg)
                print(
                    f"sent {sent}, answered {answered} {by_variant}, outcomes reported"
                    f" {reported}; ABTest {status.get('phase')}: p={status.get('pValue')},"
                    f" decision {status.get('decision') or '-'}",
                    flush=True,
                )
                if status.get("decision"):
                    return 0
                next_report = time.monotonic() + 5
    return 0


if __name__ == "__main__":
    sys.exit(main())
