"""An alert from a failing serving pod reaches a webhook through the real Alertmanager, and
so does its resolution.

Debian's Prometheus evaluates the serving alerts of the test's ModelDeployment (the rules
the operator renders into its PrometheusRule, loaded as a rule file, as the Prometheus
Operator would) and sends them to Debian's Alertmanager, which posts them to a receiver in
this process. The alert is MaestroModelNotReady: its expression has no rate window, so it
clears as soon as a pod reports a loaded model, where the error-rate and latency alerts
would stay over their limit for the 5-minute window after the fault. Production holds
every serving alert 5 minutes (`for: 5m`); the rules loaded here hold it HOLD, with the
same expressions.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from maestro.localplatform import alertmanager, prometheus
from maestro.localplatform.platform import local_operator_env
from maestro.localplatform.wait import eventually
from maestro.monitoring.alerts import Rule, ServingLimits, serving_alerts
from tests.cluster.alert_receiver import AlertReceiver, running_receiver
from tests.cluster.modeldeployments import API_VERSION, wait_status
from tests.cluster.objects import apply, items
from tests.cluster.operator_process import Operator
from tests.conftest import Cluster

pytestmark = pytest.mark.cluster

NAME = "cancer"
ALERT = "MaestroModelNotReady"
HOLD = "2s"


def model_deployment(uri: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelDeployment",
        "metadata": {"name": NAME},
        "spec": {"model": {"uri": uri, "name": "cancer"}, "replicas": {"min": 1, "max": 1}},
    }


@pytest.fixture
def receiver(prometheus_url: str) -> Iterator[AlertReceiver]:
    """A webhook receiver in this process, which the platform's Alertmanager (started with
    Prometheus) notifies until the test ends."""
    platform = prometheus.PrometheusConfig().alertmanager
    with running_receiver() as receiver:
        alertmanager.up(replace(platform, webhook_urls=(receiver.url,)))
        try:
            yield receiver
        finally:
            alertmanager.up(platform)


def prometheus_api(prometheus_url: str, path: str) -> Any:
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/{path}", timeout=5) as resp:
        return json.load(resp)["data"]


def loaded_groups(prometheus_url: str) -> set[str]:
    return {g["name"] for g in prometheus_api(prometheus_url, "rules")["groups"]}


def serving_group(prometheus_url: str, namespace: str) -> Any:
    groups = prometheus_api(prometheus_url, "rules")["groups"]
    return [g for g in groups if g["name"] == f"maestro-serving.{namespace}.{NAME}"]


@pytest.fixture
def load_serving_rules(namespace: str, prometheus_url: str) -> Iterator[Callable[[], list[Rule]]]:
    """Loads the serving alerts of the test's ModelDeployment, held HOLD, into the local
    Prometheus (which evaluates them until the test ends); returns them."""
    cfg = prometheus.PrometheusConfig()
    name = f"test-{namespace}"

    def load() -> list[Rule]:
        rules = serving_alerts(namespace, NAME, ServingLimits(hold=HOLD), runbooks="")
        group = f"maestro-serving.{namespace}.{NAME}"
        prometheus.load_rules(cfg, name, [{"name": group, "rules": rules}])
        assert group in loaded_groups(prometheus_url)
        return rules

    try:
        yield load
    finally:
        prometheus.unload_rules(cfg, name)


def operator_rule(cluster: Cluster, namespace: str, alert: str) -> dict[str, Any]:
    """The rule `alert` of the PrometheusRule the operator rendered for the deployment."""
    (rule_object,) = items(
        cluster, namespace, "prometheusrules", f"mlops.maestro.dev/deployment={NAME}"
    )
    rules = [r for g in rule_object["spec"]["groups"] for r in g["rules"]]
    return next(r for r in rules if r.get("alert") == alert)


def test_a_model_that_cannot_load_fires_at_the_webhook_and_resolves_once_it_serves(
    cluster: Cluster,
    namespace: str,
    start_operator: Callable[..., Operator],
    registered: tuple[str, Any],
    prometheus_url: str,
    receiver: AlertReceiver,
    load_serving_rules: Callable[[], list[Rule]],
) -> None:
    model, _ = registered
    operator = start_operator(env=local_operator_env(MAESTRO_PROMETHEUS_URL=prometheus_url))
    labels = {"alertname": ALERT, "namespace": namespace, "deployment": NAME}
    am = prometheus.PrometheusConfig().alertmanager

    def why() -> str:
        return (
            f"{receiver.summary()}\nAlertmanager holds: {alertmanager.alerts(am)}\n"
            f"Prometheus' alerts: {prometheus_api(prometheus_url, 'alerts')}\n"
            f"its rule group: {serving_group(prometheus_url, namespace)}"
        )

    started = time.monotonic()
    apply(cluster, namespace, model_deployment("file:///models/not-there"))
    wait_status(
        cluster,
        namespace,
        NAME,
        "ModelLoadFailed",
        lambda s: any(c.get("reason") == "ModelLoadFailed" for c in s.get("conditions") or []),
        timeout=60,
    )
    failed = time.monotonic()
    # Its PrometheusRule reaches Prometheus now, as the Prometheus Operator would load it:
    # the rules the operator rendered, but for the hold.
    rendered = operator_rule(cluster, namespace, ALERT)
    ours = next(r for r in load_serving_rules() if r["alert"] == ALERT)
    assert (rendered["expr"], rendered["labels"]) == (ours["expr"], ours["labels"])
    assert rendered["for"] == "5m", operator.logs()[-2000:]

    firing = eventually(
        lambda: receiver.first("firing", **labels), timeout=60, what="firing", why=why
    )
    (alert,) = firing.alerts(**labels)
    assert alert["status"] == "firing"
    assert alert["labels"]["severity"] == "critical"
    assert f"{namespace}/{NAME}" in alert["annotations"]["summary"]

    # The fault goes: the deployment serves a model that loads.
    fixed = time.monotonic()
    assert receiver.first("resolved", **labels) is None, why()
    apply(cluster, namespace, model_deployment(f"models:/{model}/1"))
    wait_status(cluster, namespace, NAME, "Available", lambda s: s.get("phase") == "Available", 90)
    serving = time.monotonic()
    resolved = eventually(
        lambda: receiver.first("resolved", **labels), timeout=30, what="resolved", why=why
    )
    (alert,) = resolved.alerts(**labels)
    assert alert["status"] == "resolved" and alert["endsAt"] > alert["startsAt"]
    print(
        f"ModelLoadFailed {failed - started:.1f} s after the apply; {ALERT} firing at the"
        f" webhook {firing.received - failed:.1f} s after its rules were loaded; the model"
        f" fixed {fixed - started:.1f} s after the apply, Available {serving - fixed:.1f} s"
        f" later, resolved at the webhook {resolved.received - fixed:.1f} s after the fix"
    )
