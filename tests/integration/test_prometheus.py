"""The canary analysis client against the real Prometheus scraping real pods.

Each revision is a Pod on the local control plane, run by the pod runner as a process
on its pod IP that exposes the serving contract's metrics (revision_metrics_process.py)
and records a known traffic. Prometheus discovers the pods through the local API server
and scrapes them; the assertions compare what the analysis client reads back with what
the processes recorded.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from maestro.localplatform.wait import eventually
from maestro.operators.core.prometheus import (
    PrometheusClient,
    PrometheusQueryError,
    PrometheusUnavailable,
    RevisionMetrics,
    RevisionSelector,
)
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

PROCESS = Path(__file__).with_name("revision_metrics_process.py")
PORT = 9471
WINDOW = "1m"

STABLE = {"requests": [{"code": "200", "count": 100, "seconds": 0.008}]}
CANARY = {
    "requests": [
        {"code": "200", "count": 90, "seconds": 0.02},
        {"code": "503", "count": 10, "seconds": 0.3},
    ],
    "shadow": {"requests": 50, "agreements": 45, "delta_seconds": 0.004},
}
IDLE = {"requests": [{"code": "200", "count": 0, "seconds": 0.01}]}


def revision_pod(deployment: str, revision: str, traffic: dict[str, Any], *, scrape: bool) -> Any:
    annotations = (
        {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(PORT),
            "prometheus.io/path": "/metrics",
        }
        if scrape
        else {}
    )
    env = {
        "MAESTRO_DEPLOYMENT": deployment,
        "MAESTRO_REVISION": revision,
        "MAESTRO_SERVE_MODEL_NAME": "iris",
        "MAESTRO_MODEL_VERSION": "3",
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{deployment}-{revision}",
            "labels": {
                "maestro.dev/local-run": "true",
                "app.kubernetes.io/name": "maestro-serving",
                "app.kubernetes.io/instance": deployment,
                "mlops.maestro.dev/deployment": deployment,
                "mlops.maestro.dev/revision": revision,
            },
            "annotations": annotations,
        },
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "server",
                    "image": "ghcr.io/maestro-ml/maestro:test",
                    "command": ["python", str(PROCESS)],
                    "args": ["--port", str(PORT), "--traffic", json.dumps(traffic)],
                    "ports": [{"name": "http", "containerPort": PORT}],
                    "env": [{"name": k, "value": v} for k, v in env.items()],
                }
            ],
        },
    }


@dataclass(frozen=True)
class Revisions:
    namespace: str
    deployment: str
    prometheus: PrometheusClient

    def selector(self, revision: str) -> RevisionSelector:
        return RevisionSelector(self.deployment, revision, namespace=self.namespace)


def targets(prometheus_url: str, namespace: str) -> str:
    """Prometheus' view of the namespace's targets, for failure messages."""
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/targets?state=any", timeout=5) as r:
        data = json.load(r)["data"]
    mine = [
        {k: t.get(k) for k in ("labels", "health", "lastError", "scrapeUrl")}
        for t in data["activeTargets"]
        if t["labels"].get("namespace") == namespace
    ]
    return f"active targets in {namespace}: {json.dumps(mine, indent=1)}"


@pytest.fixture(scope="module")
def revisions(cluster: Cluster, prometheus_url: str) -> Iterator[Revisions]:
    """Stable v1 (no errors), canary v2 (10% 5xx, shadow figures), idle v3 (no traffic),
    all scraped; v4 without the scrape annotation. Namespace deleted afterwards."""
    namespace = f"t-prom-{uuid.uuid4().hex[:8]}"
    deployment = f"md-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", namespace)
    try:
        # Pods are refused until the service-account controller made `default`.
        eventually(
            lambda: (
                cluster.kubectl("get", "sa", "default", "-n", namespace, check=False).returncode
                == 0
            ),
            timeout=30,
            what=f"ServiceAccount default in {namespace}",
        )
        pods = [
            revision_pod(deployment, "v1", STABLE, scrape=True),
            revision_pod(deployment, "v2", CANARY, scrape=True),
            revision_pod(deployment, "v3", IDLE, scrape=True),
            revision_pod(deployment, "v4", CANARY, scrape=False),
        ]
        cluster.kubectl(
            "apply",
            "-n",
            namespace,
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": pods}),
        )
        yield Revisions(namespace, deployment, PrometheusClient(prometheus_url, timeout=5))
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def scraped_pods(revisions: Revisions) -> dict[str, dict[str, str]]:
    """Labels of the namespace's healthy scrape targets, by pod name."""
    samples = revisions.prometheus.query(f'up{{namespace="{revisions.namespace}"}} == 1')
    return {s.labels["pod"]: dict(s.labels) for s in samples}


def dropped_pods(prometheus_url: str, namespace: str) -> set[str]:
    """Pods of the namespace that Prometheus discovered and its relabel rules dropped."""
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/targets?state=dropped", timeout=5) as r:
        dropped = json.load(r)["data"]["droppedTargets"]
    return {
        t["discoveredLabels"]["__meta_kubernetes_pod_name"]
        for t in dropped
        if t["discoveredLabels"].get("__meta_kubernetes_namespace") == namespace
    }


def test_prometheus_scrapes_annotated_pods_with_their_labels(
    revisions: Revisions, prometheus_url: str, cluster: Cluster
) -> None:
    d = revisions.deployment

    def three_scraped() -> dict[str, dict[str, str]] | None:
        pods = scraped_pods(revisions)
        return pods if len(pods) >= 3 else None

    found = eventually(
        three_scraped,
        timeout=30,
        what="three scraped revision pods",
        why=lambda: targets(prometheus_url, revisions.namespace),
    )
    assert set(found) == {f"{d}-v1", f"{d}-v2", f"{d}-v3"}
    # v4 is discovered like the others but has no prometheus.io/scrape annotation.
    eventually(
        lambda: f"{d}-v4" in dropped_pods(prometheus_url, revisions.namespace),
        timeout=15,
        what="the unannotated pod among the dropped targets",
    )
    labels = found[f"{d}-v2"]
    pod_ip = cluster.kubectl(
        "get", "pod", f"{d}-v2", "-n", revisions.namespace, "-o", "jsonpath={.status.podIP}"
    ).stdout
    assert labels["instance"] == f"{pod_ip}:{PORT}"  # the pod IP and the annotated port
    assert labels["namespace"] == revisions.namespace
    assert labels["deployment"] == d
    assert labels["revision"] == "v2"


def settled(revisions: Revisions, revision: str, prometheus_url: str) -> RevisionMetrics:
    """The revision's figures once its traffic is in Prometheus and increase() settled."""

    def probe() -> RevisionMetrics | None:
        # Zero until the traffic shows, all of it in one scrape. increase() then extrapolates
        # to the end of the window by up to one scrape interval, which stays within 10% of
        # the truth once ~10 s of samples are in the window.
        m = revisions.prometheus.revision_metrics(revisions.selector(revision), WINDOW)
        return m if m.requests and m.requests <= 110 else None

    return eventually(
        probe,
        timeout=35,
        interval=1,
        what=f"revision {revision}'s traffic in Prometheus",
        why=lambda: targets(prometheus_url, revisions.namespace),
    )


def test_analysis_reads_the_error_rate_and_p95_the_revisions_produced(
    revisions: Revisions, prometheus_url: str
) -> None:
    canary = settled(revisions, "v2", prometheus_url)
    # 10 of 100 requests answered 503; 90 took 20 ms and 10 took 300 ms, so the 95th
    # falls halfway into the (250 ms, 500 ms] bucket: 250 + 250 * 5/10 = 375 ms.
    assert canary.error_rate == pytest.approx(0.1, abs=1e-6)
    assert canary.latency_p95_ms == pytest.approx(375.0, rel=1e-6)
    # Extrapolation only ever adds (the counters start at zero inside the window).
    assert canary.requests is not None and canary.requests >= 100

    stable = settled(revisions, "v1", prometheus_url)
    # No 5xx series at all is an error rate of 0, not "no data"; all 100 at 8 ms put the
    # 95th at 5 + 5 * 95/100 = 9.75 ms in the (5 ms, 10 ms] bucket.
    assert stable.error_rate == 0.0
    assert stable.latency_p95_ms == pytest.approx(9.75, rel=1e-6)
    assert stable.requests is not None and stable.requests >= 100


def test_shadow_agreement_and_latency_delta(revisions: Revisions) -> None:
    def settled() -> Any:
        s = revisions.prometheus.shadow_metrics(revisions.selector("v2"), WINDOW)
        return s if s.requests and s.requests <= 55 else None  # see settled()

    s = eventually(settled, timeout=35, interval=1, what="the canary's shadow figures")
    assert s.agreement_rate == pytest.approx(0.9, abs=1e-6)
    # All 50 deltas were 4 ms: the (2.5 ms, 5 ms] bucket, 2.5 + 2.5 * 47.5/50 ms.
    assert s.latency_delta_p95_ms == pytest.approx(4.875, rel=1e-6)
    assert s.requests is not None and s.requests >= 50


def test_a_revision_without_traffic_or_series_is_no_data(revisions: Revisions) -> None:
    def sampled_twice() -> Any:
        m = revisions.prometheus.revision_metrics(revisions.selector("v3"), WINDOW)
        return m if m.requests is not None else None  # increase() needs two samples

    idle = eventually(sampled_twice, timeout=35, interval=1, what="the idle revision scraped")
    # Its series exist at zero: 0/0 is NaN, which is no data; zero requests is data.
    assert (idle.error_rate, idle.latency_p95_ms, idle.requests) == (None, None, 0.0)

    unknown = revisions.prometheus.revision_metrics(revisions.selector("v9"), WINDOW)
    assert (unknown.error_rate, unknown.latency_p95_ms, unknown.requests) == (None, None, None)
    no_shadow = revisions.prometheus.shadow_metrics(revisions.selector("v1"), WINDOW)
    assert (no_shadow.agreement_rate, no_shadow.latency_delta_p95_ms) == (None, None)


def test_a_bad_query_is_an_error_naming_the_url_and_query(prometheus_url: str) -> None:
    with pytest.raises(PrometheusQueryError) as err:
        PrometheusClient(prometheus_url).query("sum(rate(maestro_requests_total[1m])")
    assert f"{prometheus_url}/api/v1/query" in str(err.value)
    assert "bad_data" in str(err.value)
    assert "sum(rate(maestro_requests_total[1m])" in str(err.value)


def test_an_unreachable_prometheus_is_an_error_naming_the_url() -> None:
    # Port 9 (discard) has no listener on the loopback here: the connection is refused.
    client = PrometheusClient("http://127.0.0.1:9", timeout=2)
    with pytest.raises(PrometheusUnavailable, match=r"http://127\.0\.0\.1:9/api/v1/query"):
        client.revision_metrics(RevisionSelector("iris", "v1"), WINDOW)
