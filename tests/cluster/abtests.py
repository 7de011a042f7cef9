"""What the ABTest cluster tests share: the ABTest object, the pods of each variant, and
users who send predictions to the champion's pods and report outcomes later through
/feedback on a pod of the other variant (as a mesh and delayed outcomes would)."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from typing import Any

import httpx

from tests.cluster.modeldeployments import API_VERSION
from tests.cluster.objects import get, items
from tests.conftest import Cluster

FEEDBACK_DELAY = 1.0


def model_deployment(name: str, model: str, alias: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": f"models:/{model}@{alias}"},
            "replicas": {"min": 1, "max": 1},
            "autoscaling": {"enabled": False},
        },
    }


def abtest(name: str, deployment: str, challenger: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ABTest",
        "metadata": {"name": name},
        "spec": {
            "deployment": deployment,
            "challenger": {"model": {"uri": challenger}},
            "trafficPercent": 50,
            "metric": "converted",
            "metricType": "Proportion",
            "minimumDetectableEffect": 0.1,
            "maxDuration": "10m",
            **spec,
        },
    }


def pods(cluster: Cluster, namespace: str, deployment: str, role: str) -> list[str]:
    """Base URLs of the ready pods of the stable revision or of the challenger."""
    stable = (
        (get(cluster, namespace, "modeldeployment", deployment) or {}).get("status") or {}
    ).get("stableRevision")
    found = []
    for pod in items(cluster, namespace, "pods", f"mlops.maestro.dev/deployment={deployment}"):
        revision = pod["metadata"]["labels"].get("mlops.maestro.dev/revision", "")
        mine = revision.startswith("ab-") if role == "challenger" else revision == stable
        conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
        ready = conditions.get("Ready") == "True" and not pod["metadata"].get("deletionTimestamp")
        if mine and ready:
            found.append(f"http://{pod['status']['podIP']}:8080")
    return found


class Users:
    """Requests to the champion's pods; outcomes drawn from each variant's true rate,
    reported FEEDBACK_DELAY later on a pod of the other variant."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        deployment: str,
        rows: list[dict[str, Any]],
        rates: dict[str, float],
        report_share: dict[str, float] | None = None,
        seed: int = 7,
    ) -> None:
        self.cluster, self.namespace, self.deployment = cluster, namespace, deployment
        self.rows, self.rates = rows, rates
        self.report_share = report_share or {"champion": 1.0, "challenger": 1.0}
        self.rng = random.Random(seed)
        self.answers: dict[str, int] = {}
        self.feedback_codes: list[int] = []
        self.errors: list[str] = []
        self.pending: deque[tuple[float, str, str, float]] = deque()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self.stop.is_set():
                try:
                    self.round(http)
                except Exception as err:  # pods come and go: keep going
                    self.errors.append(f"{type(err).__name__}: {err}")
                    time.sleep(0.2)

    def round(self, http: httpx.Client) -> None:
        champions = pods(self.cluster, self.namespace, self.deployment, "stable")
        challengers = pods(self.cluster, self.namespace, self.deployment, "challenger")
        for _ in range(20):
            if not champions:
                time.sleep(0.2)
                return
            answer = http.post(
                f"{self.rng.choice(champions)}/invocations",
                json={"dataframe_records": [self.rng.choice(self.rows)]},
            )
            variant = answer.headers.get("x-maestro-variant", "none")
            self.answers[f"{variant} {answer.status_code}"] = (
                self.answers.get(f"{variant} {answer.status_code}", 0) + 1
            )
            reported = self.rng.random() < self.report_share.get(variant, 0.0)
            if answer.status_code == 200 and variant in self.rates and reported:
                outcome = 1.0 if self.rng.random() < self.rates[variant] else 0.0
                # Feedback goes to a pod of the other variant when there is one.
                other = challengers if variant == "champion" else champions
                target = self.rng.choice(other or champions)
                rid = answer.headers["x-request-id"]
                self.pending.append((time.monotonic() + FEEDBACK_DELAY, target, rid, outcome))
            self.flush(http)

    def flush(self, http: httpx.Client) -> None:
        while self.pending and self.pending[0][0] <= time.monotonic():
            _, target, rid, outcome = self.pending.popleft()
            sent = http.post(f"{target}/feedback", json={"request_id": rid, "outcome": outcome})
            self.feedback_codes.append(sent.status_code)

    def summary(self) -> str:
        codes = {c: self.feedback_codes.count(c) for c in set(self.feedback_codes)}
        return f"answers: {self.answers}; feedback {codes}; last errors: {self.errors[-3:]}"

    def __enter__(self) -> Users:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=15)
