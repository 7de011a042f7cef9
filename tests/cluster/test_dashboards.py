"""No dead panel: every query of every committed dashboard (manifests/monitoring/dashboards)
answers with data from the real Prometheus after real work on the local platform.

The in-cluster operator (scraped as a pod, so its own metrics and those it sets from the
objects' status are in Prometheus) reconciles, in the test's namespace:

- a ModelDeployment with spec.slo and the Shadow strategy: v1 serves, then the alias moves
  to v2, which shadows it. Traffic goes to every serving pod that has an address, as soon
  as it has one (a loading pod answers 503), with one row in 20 holding a NaN, which the
  model cannot score (500), and outcomes sent to /feedback; the operator's PrometheusRule
  for it (its SLO recording rules) is loaded into Prometheus, as the Prometheus Operator
  would;
- a second ModelDeployment under an ABTest (champion v1 through an alias of its own,
  challenger v2, no promotion), with users whose outcomes come back through /feedback
  (tests/cluster/abtests.py): the model-quality dashboard's A/B row is queried for that
  one (Grafana shows one deployment at a time, and that row is empty for a deployment
  without an ABTest, as it should be);
- TrainingRuns: one whose trainer fails, a 2-trial tuning run, and more sleeping runs than
  the namespace may run at once, so one is Queued.

Template variables take the test's namespace and ModelDeployment. A query that errors fails
at once; the test then waits until every query has data and fails naming each dashboard and
panel still without. NO_DATA_HERE lists the panels that cannot have data in a short test,
with why; their queries must still run without error, and a listed panel that has data
fails too (take it off the list).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow import MlflowClient

from maestro.localplatform import prometheus
from maestro.localplatform.cluster import ClusterConfig
from maestro.localplatform.wait import eventually
from tests.cluster import abtests
from tests.cluster.abtests import Users, abtest
from tests.cluster.modeldeployments import ALIAS, API_VERSION, wait_status
from tests.cluster.objects import apply, items
from tests.cluster.test_trainingrun import IRIS, training_run, wait_phase
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

DASHBOARDS = Path(__file__).resolve().parents[2] / "manifests" / "monitoring" / "dashboards"
NAME = "quality"
AB = "split"
# The deployment a row is queried for, when not NAME.
ROW_DEPLOYMENT = {"A/B tests": AB}
# Grafana's own variables, as a 1 s scrape interval gives them.
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "1s", "__range": "5m"}

DRIFT = (
    "a DriftCheck run (a CronJob tick, flushed prediction logs and the drift job) takes"
    " longer than this test: tests/cluster/test_driftcheck.py queries these panels after its"
    " drifted run"
)
NO_DATA_HERE = {
    ("maestro-model-quality", "Drift share by check"): DRIFT,
    ("maestro-model-quality", "Drifted columns"): DRIFT,
    ("maestro-model-quality", "Time since the last run"): DRIFT,
    ("maestro-model-quality", "Severity (0 Ok, 1 Warning, 2 Critical)"): DRIFT,
}


@dataclass(frozen=True)
class Query:
    dashboard: str  # uid
    row: str
    panel: str
    expr: str  # as committed, variables left in

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel}: {self.expr}"


def committed_queries() -> list[Query]:
    """Every target of every panel of the committed dashboards; a row is a panel of type
    "row" (no targets) before the panels in it."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        row = ""
        for panel in board["panels"]:
            if panel["type"] == "row":
                row = panel["title"]
            for target in panel.get("targets", []):
                found.append(Query(board["uid"], row, panel["title"], target["expr"]))
    return found


def substitute(expr: str, values: dict[str, str]) -> str:
    """`expr` with Grafana's `$name` and `${name}` replaced from `values`; an unknown
    variable fails, naming it."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"no value for ${name} in {expr}"
        return values[name]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def answer(prometheus_url: str, expr: str) -> list[dict[str, Any]]:
    """The instant query's result; an error (bad PromQL, say) fails naming the query."""
    reply = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=10)
    body = reply.json()
    assert body.get("status") == "success", f"{expr}: {body.get('error', reply.text)}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def has_data(result: list[dict[str, Any]]) -> bool:
    """At least one series with a number (a ratio over nothing is NaN: no data to Grafana)."""
    return any(math.isfinite(float(series["value"][1])) for series in result)


def model_deployment(model: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "metadata": {"name": NAME},
        "spec": {
            "model": {"uri": f"models:/{model}@{ALIAS}", "name": "cancer"},
            "replicas": {"min": 1, "max": 1},
            "strategy": {"type": "Shadow", "shadow": {"percent": 100}},
            "slo": {"availability": 99.0, "latency": {"thresholdMs": 250, "percent": 99}},
        },
    }


def first_training_runs() -> list[dict[str, Any]]:
    """A run that fails and a tuning run, before the queue fills up."""
    return [
        training_run(
            "broken",
            framework="Generic",
            command=["python", "-c", "import sys; sys.exit(3)"],
            backoffLimit=0,
        ),
        training_run(
            "tune",
            framework="SKLearn",
            params={"model": "random_forest", "n_estimators": 5},
            dataset=IRIS,
            tuning={
                "trials": 2,
                "parallelism": 1,
                "objectives": [{"metric": "accuracy", "direction": "maximize"}],
                "space": {"max_depth": {"type": "int", "low": 1, "high": 4}},
            },
        ),
    ]


def sleeping_runs() -> list[dict[str, Any]]:
    """More runs than the local operator runs at once per namespace (4): one always waits."""
    sleep = ["python", "-c", "import time; time.sleep(600)"]
    return [training_run(f"sleep{i}", framework="Generic", command=sleep) for i in range(5)]


def infer_body(row: list[float]) -> str:
    """An Open Inference Protocol v2 request of one row (NaN written as JSON's NaN)."""
    tensor = {"name": "input", "shape": [1, len(row)], "datatype": "FP64", "data": [row]}
    return json.dumps({"inputs": [tensor]})


class Traffic:
    """Requests to every serving pod of the deployment that has an address (loading pods
    included), one row in 20 unscorable, plus outcomes on /feedback."""

    def __init__(self, cluster: Cluster, namespace: str, rows: list[list[float]]):
        self.cluster, self.namespace, self.rows = cluster, namespace, rows
        self.codes: dict[int, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def pods(self) -> list[str]:
        found = items(self.cluster, self.namespace, "pods", f"mlops.maestro.dev/deployment={NAME}")
        return [p["status"]["podIP"] for p in found if p["status"].get("podIP")]

    def run(self) -> None:
        sent = 0
        with httpx.Client(timeout=5) as http:
            while not self.stop.is_set():
                for ip in self.pods():
                    for _ in range(5):
                        row = list(self.rows[sent % len(self.rows)])
                        if sent % 20 == 0:
                            row[0] = math.nan
                        sent += 1
                        try:
                            code = http.post(
                                f"http://{ip}:8080/v2/models/cancer/infer", content=infer_body(row)
                            ).status_code
                            http.post(
                                f"http://{ip}:8080/feedback",
                                json={"user_key": f"u{sent}", "outcome": sent % 2 == 0},
                            )
                        except httpx.HTTPError:
                            continue  # not listening yet, or gone
                        self.codes[code] = self.codes.get(code, 0) + 1
                self.stop.wait(0.2)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


@pytest.fixture
def deployment_rules(namespace: str, prometheus_url: str) -> Iterator[prometheus.PrometheusConfig]:
    cfg = prometheus.PrometheusConfig()
    try:
        yield cfg
    finally:
        prometheus.unload_rules(cfg, f"test-{namespace}")


def test_every_panel_of_every_dashboard_has_data_after_real_work(
    deployed_operator: ClusterConfig,
    cluster: Cluster,
    namespace: str,
    registered: tuple[str, Any],
    mlflow_url: str,
    prometheus_url: str,
    deployment_rules: prometheus.PrometheusConfig,
) -> None:
    queries = committed_queries()
    panels = {(q.dashboard, q.panel) for q in queries}
    assert set(NO_DATA_HERE) <= panels, (
        f"listed panels no dashboard has: {set(NO_DATA_HERE) - panels}"
    )
    values = {**GRAFANA_VARIABLES, "namespace": namespace, "deployment": NAME}

    def query(q: Query) -> str:
        return substitute(q.expr, {**values, "deployment": ROW_DEPLOYMENT.get(q.row, NAME)})

    model, features = registered
    client = MlflowClient(mlflow_url, mlflow_url)
    client.set_registered_model_alias(model, ALIAS, "1")
    apply(cluster, namespace, *first_training_runs())
    client.set_registered_model_alias(model, AB, "1")  # the split deployment's own alias
    apply(cluster, namespace, model_deployment(model), abtests.model_deployment(AB, model, AB))
    rows = features.head(40)
    users = Users(
        cluster, namespace, AB, rows.to_dict(orient="records"), {"champion": 0.5, "challenger": 0.5}
    )
    with Traffic(cluster, namespace, rows.to_numpy().tolist()) as traffic, users:
        wait_status(
            cluster, namespace, AB, "split Available", lambda s: s.get("phase") == "Available", 120
        )
        # No promotion: a win would move the alias mid-test.
        ab = abtest("ab", AB, f"models:/{model}/2", maxDuration="10m", autoPromote=False)
        apply(cluster, namespace, ab)
        wait_status(
            cluster,
            namespace,
            NAME,
            "Available on v1",
            lambda s: s.get("phase") == "Available",
            120,
        )
        # Once the tuning run holds its place (and reports trials), the queue fills up.
        wait_phase(deployed_operator, cluster, namespace, "tune", ("Running", "Succeeded"), 120)
        apply(cluster, namespace, *sleeping_runs())
        (rule,) = items(
            cluster, namespace, "prometheusrules", f"mlops.maestro.dev/deployment={NAME}"
        )
        prometheus.load_rules(deployment_rules, f"test-{namespace}", rule["spec"]["groups"])
        client.set_registered_model_alias(model, ALIAS, "2")
        wait_status(
            cluster,
            namespace,
            NAME,
            "v2 shadowing",
            lambda s: s.get("canaryRevision") == "v2" and (s.get("shadow") or {}).get("requests"),
            120,
        )

        def dead() -> list[Query]:
            return [
                q
                for q in queries
                if (q.dashboard, q.panel) not in NO_DATA_HERE
                and not has_data(answer(prometheus_url, query(q)))
            ]

        missing: list[list[Query]] = [[]]

        def all_alive() -> bool:
            missing[0] = dead()
            return not missing[0]

        def why() -> str:
            return (
                "panels without data:\n"
                + "\n".join(map(str, missing[0]))
                + f"\nanswers: {traffic.codes}\nA/B users: {users.summary()}"
            )

        eventually(all_alive, timeout=60, what="data in every panel", why=why, interval=2)
    listed = [
        q
        for q in queries
        if (q.dashboard, q.panel) in NO_DATA_HERE and has_data(answer(prometheus_url, query(q)))
    ]
    assert not listed, "listed in NO_DATA_HERE but have data:\n" + "\n".join(map(str, listed))
    print(f"{len(queries)} queries of {len(panels)} panels; answers {traffic.codes}")
