"""The scale scenarios of `make bench-operator`: ModelDeployments of a real registered model,
then TrainingRuns, created at a steady rate against the standalone operator, with kwok
faking their pods on a node of the bench's own. Each reports how long every custom
resource took to get all its children, the operator's memory once all are settled, its API
writes over an idle window, and what a restart of the operator costs."""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from kubernetes import client, config

from maestro.localplatform import cluster, mlflow_server
from maestro.localplatform.platform import local_operator_env
from maestro.localplatform.wait import eventually
from tests.bench.operator_process import (
    POD_RUNNER_SETTINGS,
    ChildWatch,
    OperatorProcess,
    bench_node,
    diff,
    kopf_events,
    percentile,
    platform_cpu,
)

GROUP, VERSION = "mlops.maestro.dev", "v1alpha1"
# What a ModelDeployment or a TrainingRun may own, in the namespace.
CHILD_RESOURCES = [
    "deployments.apps", "services", "serviceaccounts", "poddisruptionbudgets.policy",
    "horizontalpodautoscalers.autoscaling", "networkpolicies.networking.k8s.io",
    "servicemonitors.monitoring.coreos.com", "prometheusrules.monitoring.coreos.com",
    "configmaps", "secrets", "jobs.batch", "pytorchjobs.kubeflow.org",
]  # fmt: skip


def register_model(url: str, name: str, versions: int = 2) -> None:
    """A tiny scikit-learn pipeline registered `versions` times as `name` (MLflow imported
    here only: the bench, not the operator, pays for it)."""
    import mlflow
    import sklearn
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True, as_frame=True)
    mlflow.set_tracking_uri(url)
    mlflow.set_experiment(name)
    for c in [1.0, 0.1, 0.01][:versions]:
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                LogisticRegression(C=c, max_iter=300).fit(x, y),
                name="model",
                registered_model_name=name,
                pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
            )


def forget_model(url: str, name: str, experiments: list[str]) -> None:
    from mlflow import MlflowClient

    mlflow = MlflowClient(url, url)
    if name:
        mlflow.delete_registered_model(name)
    for experiment in experiments:
        found = mlflow.get_experiment_by_name(experiment)
        if found is not None:
            mlflow.delete_experiment(found.experiment_id)


def create_at_rate(
    api: client.CustomObjectsApi, namespace: str, plural: str, bodies: list[dict[str, Any]],
    rate: float,
) -> tuple[dict[str, float], float]:  # fmt: skip
    """Create each object at its turn (`rate` per second); when each create was sent, and
    the rate reached."""
    sent: dict[str, float] = {}
    start = time.monotonic()
    for i, body in enumerate(bodies):
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
        sent[body["metadata"]["name"]] = time.monotonic()
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
    return sent, len(bodies) / max(time.monotonic() - start, 1e-9)


def latencies(
    sent: dict[str, float], watch: ChildWatch, count: int
) -> tuple[list[float], list[float], Counter[str]]:
    """Per object, from its create to its first and to its last child first seen; and what
    the children are (resource kinds, counted over all objects)."""
    seen = watch.snapshot()
    kinds: Counter[str] = Counter()
    first, last = [], []
    for name, t0 in sent.items():
        children = seen.get(name, {})
        kinds.update(child.split("/")[0] for child in children)
        if children:
            first.append(min(children.values()) - t0)
            last.append(max(children.values()) - t0)
    assert len(last) == count, f"only {len(last)} of {count} got children"
    return first, last, kinds


def measure(
    cfg: cluster.ClusterConfig, kind: str, plural: str, bodies: list[dict[str, Any]],
    namespace: str, env: dict[str, str], rate: float, window: float,
    settled: Callable[[], bool], children_done: Callable[[ChildWatch], bool],
) -> dict[str, Any]:  # fmt: skip
    """Create `bodies` against a fresh operator, then measure it settled, idle and restarted."""
    config.load_kube_config(str(cfg.kubeconfig))
    api = client.CustomObjectsApi()
    log = cfg.root / "logs" / f"bench-operator-{namespace}.log"
    operator = OperatorProcess(cfg, namespace, env, log)
    count = len(bodies)
    watch = ChildWatch(cfg, namespace, kind)
    with bench_node(cfg, count), watch.watching(CHILD_RESOURCES):
        operator.start()
        try:
            time.sleep(2)  # the watches' initial (empty) lists
            cpu_before, operator_before = platform_cpu(cfg), operator.cpu_seconds()
            started = time.monotonic()
            sent, reached = create_at_rate(api, namespace, plural, bodies, rate)
            eventually(lambda: children_done(watch), timeout=900, interval=2,
                       what=f"children of {count} {plural}")  # fmt: skip
            eventually(settled, timeout=900, interval=5, what=f"{count} {plural} settled")
            # Who used the 2 cores from the first create until all settled.
            cpu = diff(platform_cpu(cfg), cpu_before)
            cpu["operator"] = operator.cpu_seconds() - operator_before
            settle_seconds = time.monotonic() - started
            operator.quiet(10)
            first, took, kinds = latencies(sent, watch, count)
            phases = Counter(statuses(cfg, namespace, plural, ".status.phase"))
            result: dict[str, Any] = {
                "phases": dict(sorted(phases.items())),
                "count": count,
                "rate": reached,
                "first_p50": percentile(first, 0.5),
                "first_p95": percentile(first, 0.95),
                "p50": percentile(took, 0.5),
                "p95": percentile(took, 0.95),
                "max": max(took),
                "children": {k: v / count for k, v in sorted(kinds.items())},
                "writes_to_settle": sum(operator.writes().values()),
                "settle_seconds": settle_seconds,
                "cpu_seconds": dict(sorted(cpu.items(), key=lambda kv: -kv[1])),
                "rss_mb": operator.rss_mb(),
            }
            # Idle: nothing changes; the watches reconnect (every 60 s) meanwhile.
            before, events, reconciles = operator.writes(), kopf_events(cfg, namespace), \
                operator.reconciles(kind)  # fmt: skip
            time.sleep(window)
            result |= {
                "idle_window": window,
                "idle_writes": diff(operator.writes(), before),
                "idle_events": kopf_events(cfg, namespace) - events,
                "idle_reconciles": operator.reconciles(kind) - reconciles,
                "rss_idle_mb": operator.rss_mb(),
            }
            result |= restart(operator, kind, count)
            result["restart_events"] = kopf_events(cfg, namespace) - events - result["idle_events"]
            return result
        finally:
            operator.stop()
            # The operator is stopped first: nothing of the namespace holds a finalizer.
            delete_namespace(cfg, namespace)


def delete_namespace(cfg: cluster.ClusterConfig, namespace: str) -> None:
    """Delete the namespace and wait until it is gone (1,000 objects and their children
    take minutes, more than one kubectl call may wait), so the next scenario starts clean."""
    cluster.kubectl(cfg, "delete", "namespace", namespace, "--wait=false", check=False)

    def gone() -> bool:
        found = cluster.kubectl(cfg, "get", "namespace", namespace, "--ignore-not-found",
                                "-o", "name", check=False)  # fmt: skip
        return found.returncode == 0 and not found.stdout.strip()

    try:
        eventually(gone, timeout=900, interval=5, what=f"namespace {namespace} deleted")
    except AssertionError as err:
        print(f"warning: {err}", file=sys.stderr)


def restart(operator: OperatorProcess, kind: str, count: int) -> dict[str, Any]:
    """Stop the operator, start it again: how long until its reconciles stop (every object
    reconciled at least once, counted), and what the new process wrote meanwhile."""
    operator.stop()
    operator.start()
    last, changed = 0.0, time.monotonic()
    while True:
        now = operator.reconciles(kind)
        if now != last:
            last, changed = now, time.monotonic()
        elif now >= count and time.monotonic() - changed > 5:
            break
        assert time.monotonic() - operator.started < 600, f"{now} reconciles after restart"
        time.sleep(0.1)
    operator.quiet(10)
    return {
        "restart_seconds": changed - operator.started,
        "restart_reconciles": last,
        "restart_writes": operator.writes(),
        "rss_restart_mb": operator.rss_mb(),
    }


def statuses(cfg: cluster.ClusterConfig, namespace: str, plural: str, path: str) -> list[str]:
    out: str = cluster.kubectl(
        cfg, "get", plural, "-n", namespace, "-o", f"jsonpath={{.items[*]{path}}}"
    ).stdout
    return out.split()


def bench_env(**overrides: str) -> dict[str, str]:
    env = local_operator_env(**overrides)
    return {k: v for k, v in env.items() if k not in POD_RUNNER_SETTINGS}


def deployments(count: int, rate: float, window: float) -> dict[str, Any]:
    cfg = cluster.ClusterConfig()
    cluster.up(cfg)
    mlflow = mlflow_server.MlflowConfig()
    mlflow_server.up(mlflow)
    namespace = f"bench-md-{uuid.uuid4().hex[:6]}"
    model = f"bench-operator-{namespace}"
    register_model(mlflow.url, model)
    cluster.kubectl(cfg, "create", "namespace", namespace)
    bodies = [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ModelDeployment",
            "metadata": {"name": f"md-{i:04d}", "namespace": namespace},
            "spec": {"model": {"uri": f"models:/{model}/1"}},
        }
        for i in range(count)
    ]

    def ready() -> bool:
        found = statuses(cfg, namespace, "modeldeployments",
                         ".status.conditions[?(@.type=='Ready')].status")  # fmt: skip
        return len(found) == count and set(found) == {"True"}

    def children_done(watch: ChildWatch) -> bool:
        return len(watch.snapshot()) == count

    try:
        return measure(cfg, "ModelDeployment", "modeldeployments", bodies, namespace,
                       bench_env(MAESTRO_MLFLOW_TRACKING_URI=mlflow.url), rate, window,
                       ready, children_done)  # fmt: skip
    finally:
        forget_model(mlflow.url, model, [model])


def trainingruns(count: int, rate: float, window: float) -> dict[str, Any]:
    cfg = cluster.ClusterConfig()
    cluster.up(cfg)
    mlflow = mlflow_server.MlflowConfig()
    mlflow_server.up(mlflow)
    namespace = f"bench-tr-{uuid.uuid4().hex[:6]}"
    experiment = f"bench-operator-{namespace}"
    cluster.kubectl(cfg, "create", "namespace", namespace)
    spec = {
        "framework": "SKLearn",
        "dataset": {"uri": "sklearn://iris"},
        "params": {"model": "logistic_regression"},
        "mlflow": {"experiment": experiment},
    }
    bodies = [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "TrainingRun",
            "metadata": {"name": f"tr-{i:04d}", "namespace": namespace},
            "spec": spec,
        }
        for i in range(count)
    ]

    def started() -> bool:
        # Running (kwok keeps the trainer pods running) or finished (kwok completed them).
        found = statuses(cfg, namespace, "trainingruns", ".status.phase")
        return len(found) == count and set(found) <= {"Running", "Succeeded", "Failed"}

    def children_done(watch: ChildWatch) -> bool:
        seen = watch.snapshot()
        return len(seen) == count and all(
            any(c.startswith("jobs.batch/") for c in children) for children in seen.values()
        )

    # Every run is admitted at once: the namespace's limit (4 by default) would otherwise
    # measure the queue, not the operator.
    env = bench_env(MAESTRO_MLFLOW_TRACKING_URI=mlflow.url,
                    MAESTRO_MAX_CONCURRENT_RUNS=str(count))  # fmt: skip
    try:
        result = measure(cfg, "TrainingRun", "trainingruns", bodies, namespace, env, rate,
                         window, started, children_done)  # fmt: skip
    finally:
        forget_model(mlflow.url, "", [experiment])
    return result
