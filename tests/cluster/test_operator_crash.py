"""Crash consistency: the operator SIGKILLed at random moments of its reconciles.

A real `maestro operator` process (serving only the test namespace, set up as the local
overlay sets up the in-cluster one) reconciles ModelDeployments, TrainingRuns, an ABTest
and a DriftCheck while the test kills it with SIGKILL, starts it again and kills it again.
Each incarnation is killed a random time (seeded: the seed is printed) after it answers
its liveness probe: its first seconds are the start-up pass over every object of the
namespace, so the kills land inside reconciles of every kind. Between kills the test
creates, updates (a new model version to roll out, a new split, a new schedule) and
deletes objects, as users do.

After the last kill one operator runs undisturbed, and the cluster must converge to
exactly what the specs call for (Kubernetes controllers' level-triggered promise):

- every object's status written for its current generation (no lost status);
- exactly one Deployment per revision the spec calls for, none for a replaced one
  (no duplicate revision);
- nothing owned by a deleted object left (no orphan);
- each TrainingRun one Job, one MLflow run and one model version, its alias set once on
  that version (no run trained twice, no alias moved twice).

`make test` runs 10 kills; `make chaos` 60 (MAESTRO_CHAOS_KILLS) with more objects.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from mlflow import MlflowClient

from maestro.localplatform.platform import local_operator_env
from maestro.localplatform.wait import eventually
from tests.cluster.abtests import abtest
from tests.cluster.modeldeployments import ALIAS, API_VERSION
from tests.cluster.objects import apply, get, items
from tests.cluster.operator_process import Operator
from tests.conftest import Cluster

KILLS = int(os.environ.get("MAESTRO_CHAOS_KILLS", "10"))
# A start and a kill take about 5 s; convergence up to 4 minutes.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300 + 8 * KILLS)]
# Objects per kind beyond the first (make chaos raises it): more reconciles per start-up.
EXTRA = int(os.environ.get("MAESTRO_CHAOS_EXTRA", "0"))
SEED = int(os.environ.get("MAESTRO_CHAOS_SEED", str(random.randrange(1 << 30))))
# Where in an incarnation's life the kill lands: within its start-up pass, mostly.
KILL_AFTER = (0.0, 2.5)
IRIS = {"uri": "sklearn://iris"}
DEPLOYMENT = "mlops.maestro.dev/deployment"
# What the operator creates in a namespace, for the orphan check.
OWNED_KINDS = (
    "deployments,services,horizontalpodautoscalers,poddisruptionbudgets,networkpolicies,"
    "servicemonitors,prometheusrules,virtualservices,destinationrules,jobs,cronjobs,"
    "configmaps,trainingruns"
)


def model_deployment(name: str, uri: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": uri},
            "replicas": {"min": 1, "max": 1},
            "autoscaling": {"enabled": False},
            "strategy": {"type": "Rolling"},
        },
    }


def training_run(name: str, model: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingRun",
        "metadata": {"name": name},
        "spec": {
            "framework": "SKLearn",
            "params": {"model": "random_forest", "n_estimators": 10},
            "dataset": IRIS,
            "registerAs": {"name": model},
        },
    }


def drift_check(name: str, deployment: str, training_run: str, schedule: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "DriftCheck",
        "metadata": {"name": name},
        "spec": {
            "deployment": deployment,
            "schedule": schedule,
            "reference": {"trainingRun": training_run},
            "current": {"window": "1h"},
            "thresholds": {"warning": 0.25, "critical": 0.5},
        },
    }


class Chaos:
    """Starts the operator, kills it (SIGKILL) a random time after it is live, `kills`
    times; `kills_done` is what the test's script waits on."""

    def __init__(self, start: Callable[..., Operator], env: dict[str, str], kills: int):
        self.start, self.env, self.kills = start, env, kills
        self.rng = random.Random(SEED)
        self.kills_done = 0
        self.lines_at_kill: list[int] = []
        self.failure: BaseException | None = None
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        try:
            for _ in range(self.kills):
                operator = self.start(env=self.env)
                time.sleep(self.rng.uniform(*KILL_AFTER))
                operator.process.send_signal(signal.SIGKILL)
                operator.process.wait()
                # The reconciles the incarnation had begun: its log's lines naming an object.
                self.lines_at_kill.append(operator.logs().count("] "))
                with self.changed:
                    self.kills_done += 1
                    self.changed.notify_all()
        except BaseException as err:  # reported by wait_kills in the test's thread
            self.failure = err
            with self.changed:
                self.changed.notify_all()

    def wait_kills(self, count: int) -> None:
        with self.changed:
            while self.kills_done < min(count, self.kills) and self.failure is None:
                self.changed.wait(timeout=1)
        if self.failure is not None:
            raise AssertionError(f"the chaos thread failed: {self.failure!r}") from self.failure


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(
        (c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == "Ready"), {}
    )


def settled(obj: dict[str, Any] | None) -> bool:
    """Status written for the current generation, with its Ready condition."""
    if obj is None:
        return False
    status = obj.get("status") or {}
    generation = obj["metadata"]["generation"]
    return status.get("observedGeneration") == generation and bool(ready(obj))


def all_objects(cluster: Cluster, namespace: str, kinds: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(
        cluster.kubectl("get", kinds, "-n", namespace, "-o", "json").stdout
    )["items"]
    return found


def test_sigkills_during_reconciles_leave_exactly_what_the_specs_call_for(
    start_operator: Callable[..., Operator],
    cluster: Cluster,
    namespace: str,
    registered: tuple[str, Any],
    mlflow_url: str,
    prometheus_url: str,
) -> None:
    print(f"\nchaos seed {SEED} (MAESTRO_CHAOS_SEED), {KILLS} kills, {EXTRA} extra objects")
    model, _ = registered
    client = MlflowClient(mlflow_url, mlflow_url)
    trained = f"crash-{namespace}"
    env = local_operator_env(
        MAESTRO_MLFLOW_TRACKING_URI=mlflow_url, MAESTRO_PROMETHEUS_URL=prometheus_url
    )
    extra = [f"x{i}" for i in range(EXTRA)]

    # Before the first operator: the objects of the first start-up pass.
    apply(
        cluster,
        namespace,
        model_deployment("roll", f"models:/{model}/1"),
        # An ABTest's win moves an alias: its deployment serves one.
        model_deployment("champ", f"models:/{model}@{ALIAS}"),
        model_deployment("gone", f"models:/{model}/2"),
        training_run("train", trained),
        training_run("dropped", f"{trained}-dropped"),
        abtest("ab", "champ", f"models:/{model}/2"),
        drift_check("drift", "roll", "train", "0 * * * *"),
        *(model_deployment(f"md-{x}", f"models:/{model}/1") for x in extra),
        *(training_run(f"tr-{x}", f"{trained}-{x}") for x in extra),
    )
    chaos = Chaos(start_operator, env, KILLS)
    chaos.thread.start()

    # Users' changes, each between two kills.
    step = max(1, KILLS // 5)
    chaos.wait_kills(step)
    apply(cluster, namespace, model_deployment("roll", f"models:/{model}/2"))
    chaos.wait_kills(2 * step)
    cluster.kubectl("delete", "modeldeployment", "gone", "-n", namespace, "--wait=false")
    cluster.kubectl("delete", "trainingrun", "dropped", "-n", namespace, "--wait=false")
    chaos.wait_kills(3 * step)
    apply(cluster, namespace, abtest("ab", "champ", f"models:/{model}/2", trafficPercent=20))
    apply(cluster, namespace, drift_check("drift", "roll", "train", "30 * * * *"))
    chaos.wait_kills(4 * step)
    for x in extra[: len(extra) // 2]:
        cluster.kubectl("delete", "modeldeployment", f"md-{x}", "-n", namespace, "--wait=false")
    chaos.wait_kills(KILLS)
    chaos.thread.join(timeout=30)
    print(f"log lines naming an object at each kill: {chaos.lines_at_kill}")
    # Kills inside reconciles: every incarnation had begun reconciling when it died.
    assert sum(1 for n in chaos.lines_at_kill if n > 0) >= KILLS // 2, chaos.lines_at_kill

    # One operator, left alone: everything converges.
    restarted = time.monotonic()
    operator = start_operator(env=env)
    kept_md = ["roll", "champ", *(f"md-{x}" for x in extra[len(extra) // 2 :])]
    kept_tr = ["train", *(f"tr-{x}" for x in extra)]

    settled_after: dict[str, float] = {}

    def done(obj: dict[str, Any] | None) -> bool:
        """Status for the current generation, and where the spec leads."""
        if obj is None or not settled(obj):
            return False
        status, name = obj["status"], obj["metadata"]["name"]
        if obj["kind"] == "TrainingRun":
            return bool(status.get("phase") in ("Succeeded", "Failed"))
        if obj["kind"] == "ABTest":
            return bool(status.get("phase") == "Running")
        if obj["kind"] == "ModelDeployment":
            revision = "v2" if name == "roll" else "v1"
            return bool(
                status.get("phase") == "Available" and status.get("stableRevision") == revision
            )
        return True

    def converged() -> bool:
        objs = [get(cluster, namespace, "modeldeployment", n) for n in kept_md]
        objs += [get(cluster, namespace, "trainingrun", n) for n in kept_tr]
        objs += [
            get(cluster, namespace, "abtest", "ab"),
            get(cluster, namespace, "driftcheck", "drift"),
        ]
        for o in objs:
            if o is not None and done(o):
                key = f"{o['kind']}/{o['metadata']['name']}"
                settled_after.setdefault(key, round(time.monotonic() - restarted, 1))
        return all(done(o) for o in objs)

    def why() -> str:
        summary = cluster.kubectl(
            "get", "modeldeployments,trainingruns,abtests,driftchecks,deployments,jobs",
            "-n", namespace, check=False,
        ).stdout  # fmt: skip
        ab = (get(cluster, namespace, "abtest", "ab") or {}).get("status")
        return f"{summary}\nABTest status: {ab}\noperator log tail:\n{operator.logs()[-3000:]}"

    eventually(converged, timeout=240, what="every object settled", why=why, interval=1)
    print(f"converged {time.monotonic() - restarted:.1f} s after the last start: {settled_after}")

    # No duplicate revision: one Deployment per revision the specs call for.
    deployments = items(cluster, namespace, "deployments", DEPLOYMENT)
    by_owner: dict[str, list[str]] = {}
    for d in deployments:
        by_owner.setdefault(d["metadata"]["labels"][DEPLOYMENT], []).append(d["metadata"]["name"])
    assert sorted(by_owner["roll"]) == ["roll-v2"], by_owner
    # The champion's revision and the ABTest's one challenger.
    champ = sorted(by_owner["champ"], key=lambda n: n != "champ-v1")
    assert len(champ) == 2 and champ[0] == "champ-v1" and champ[1].startswith("champ-ab-"), champ
    for name in kept_md[2:]:
        assert by_owner[name] == [f"{name}-v1"], by_owner

    # No orphan: nothing left of the deleted objects, nothing owned by a missing owner.
    eventually(
        lambda: (
            not {"gone", *(f"md-{x}" for x in extra[: len(extra) // 2])}
            & set(
                (d["metadata"].get("labels") or {}).get(DEPLOYMENT, "")
                for d in all_objects(cluster, namespace, OWNED_KINDS)
            )
        ),
        timeout=60,
        what="the deleted ModelDeployments' objects collected",
    )
    objects = all_objects(cluster, namespace, OWNED_KINDS)
    kinds = "modeldeployments,trainingruns,abtests,driftchecks,deployments,jobs,cronjobs"
    uids = {o["metadata"]["uid"] for o in all_objects(cluster, namespace, kinds)}
    orphans = [
        f"{o['kind']}/{o['metadata']['name']}"
        for o in objects
        for ref in o["metadata"].get("ownerReferences", [])
        if ref["uid"] not in uids and ref["kind"] != "ReplicaSet"
    ]
    assert not orphans, orphans

    # The DriftCheck's one CronJob follows its updated schedule.
    (cronjob,) = [o for o in objects if o["kind"] == "CronJob"]
    assert cronjob["spec"]["schedule"] == "30 * * * *"
    assert get(cluster, namespace, "abtest", "ab")["metadata"]["generation"] == 2  # type: ignore[index]

    # No TrainingRun trained twice: one Job, one MLflow run, one version, alias set once.
    for name, registered_as in [
        ("train", trained),
        *((f"tr-{x}", f"{trained}-{x}") for x in extra),
    ]:
        run = get(cluster, namespace, "trainingrun", name)
        assert run is not None
        status, uid = run["status"], run["metadata"]["uid"]
        assert status["phase"] == "Succeeded", status
        jobs = [
            o["metadata"]["name"]
            for o in objects
            if o["kind"] == "Job"
            and any(r["uid"] == uid for r in o["metadata"].get("ownerReferences", []))
        ]
        assert len(jobs) == 1, (name, jobs)
        mlflow_runs = client.search_runs(
            [client.get_experiment_by_name(namespace).experiment_id],
            f"tags.`maestro.trainingrun.uid` = '{uid}'",
        )
        assert [r.info.run_id for r in mlflow_runs] == [status["mlflowRunId"]], name
        versions = client.search_model_versions(f"name = '{registered_as}'")
        assert [v.version for v in versions] == [status["modelVersion"]], name
        assert client.get_model_version_by_alias(registered_as, "candidate").version == str(
            status["modelVersion"]
        )
    # The dropped run: at most its one MLflow run, and no Job.
    assert not [
        o for o in objects if o["kind"] == "Job" and o["metadata"]["name"].startswith("dropped")
    ]
    assert operator.process.poll() is None, operator.logs()[-2000:]
