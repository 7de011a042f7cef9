"""Every alert (serving and SLO per ModelDeployment, drift per DriftCheck, the platform's)
links a runbook in docs/runbooks that names the alert, the metrics of its expression and the
expression itself, so an alert added or changed without its runbook fails here. The metrics
an alert queries are exported by the program that owns them (the model server, the
operator) or recorded by a rule of the same group."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client import CollectorRegistry

from maestro.monitoring.alerts import drift_alerts
from maestro.monitoring.platform_alerts import platform_groups
from maestro.operators.abtest.metrics import ABTestStatusMetrics
from maestro.operators.api.modeldeployment import ModelDeploymentSpec
from maestro.operators.core.operator_metrics import OperatorMetrics
from maestro.operators.core.settings import OperatorConfig
from maestro.operators.driftcheck.metrics import DriftMetrics
from maestro.operators.modeldeployment.render import (
    DeploymentIds,
    ServingSettings,
    render_prometheus_rule,
)
from maestro.operators.trainingrun.metrics import TrainingMetrics
from maestro.serving.metrics import ServingMetrics

pytestmark = pytest.mark.unit

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
BASE = "https://runbooks.example.com/maestro/"
# The placeholders the runbooks write their PromQL with.
IDS = DeploymentIds(namespace="<ns>", name="<md>", uid="00000000-0000-0000-0000-000000000000")
# The SLO of manifests/examples/modeldeployment.yaml.
SPEC = ModelDeploymentSpec.model_validate(
    {
        "model": {"uri": "models:/iris/3"},
        "slo": {"availability": 99.9, "latency": {"thresholdMs": 250, "percent": 99}},
    }
)
SETTINGS = ServingSettings(
    tracking_uri="http://mlflow:5000", image="maestro", runbook_base_url=BASE
)
# Maestro's metric names (and the names of the series its rules record) in an expression.
METRIC = re.compile(r"(?<![a-zA-Z0-9_:])((?:[a-z]+:)?maestro_[a-zA-Z0-9_:]*)")


def _groups() -> list[dict[str, Any]]:
    serving = render_prometheus_rule(IDS, SPEC, SETTINGS)["spec"]["groups"]
    drift = {
        "name": "drift",
        "rules": drift_alerts("<ns>", "<dc>", "<md>", warning=0.3, critical=0.5, runbooks=BASE),
    }
    groups: list[dict[str, Any]] = [*serving, drift, *platform_groups(BASE)]
    return groups


GROUPS = _groups()
ALERTS = [r for group in GROUPS for r in group["rules"] if "alert" in r]
RECORDED = {r["record"]: r["expr"] for group in GROUPS for r in group["rules"] if "record" in r}
SERVING = {
    a["alert"] for a in render_prometheus_rule(IDS, SPEC, SETTINGS)["spec"]["groups"][0]["rules"]
}


def _flat(text: str) -> str:
    return " ".join(text.split())


def _runbook(alert: dict[str, Any]) -> Path:
    return RUNBOOKS / PurePosixPath(urlsplit(alert["annotations"]["runbook_url"]).path).name


def _names(registry: CollectorRegistry) -> set[str]:
    return {sample.name for family in registry.collect() for sample in family.samples}


def _served_metrics() -> set[str]:
    """Sample names a model server exports once its model is loaded and has answered."""
    registry = CollectorRegistry()
    model = ServingMetrics(registry, deployment="md", revision="v1").for_model("m", "1")
    model.loaded(0.1)
    model.queue(lambda: 0, 8)
    model.request(200, "v2", 0.001)
    return _names(registry)


def _operator_metrics() -> set[str]:
    """Sample names the operator exports once it reconciled one object of each kind."""
    registry = CollectorRegistry()
    ops = OperatorMetrics(registry)
    ops.reconcile_seconds.labels("ModelDeployment").observe(0.1)
    ops.reconcile_errors.labels("ModelDeployment").inc()
    ops.workqueue_depth.labels("ModelDeployment").set(1)
    ops.wrote("Deployment", "patch")
    TrainingMetrics(registry).show("ns", "r", {"phase": "Running", "trials": {"running": 1}})
    ABTestStatusMetrics(registry).show("ns", "t", "md", {"phase": "Running", "srmPValue": 0.5})
    drift = DriftMetrics(registry)
    drift.show("ns", "dc", {"driftShare": 0.1, "severity": "Ok"}, "md")
    drift.show_schedule("ns", "dc", "md", last_run=0.0, failed=False, interval=3600.0)
    return _names(registry)


EXPORTED = _served_metrics() | _operator_metrics()


def test_there_are_alerts() -> None:
    assert len(ALERTS) >= 15


@pytest.mark.parametrize("alert", ALERTS, ids=[a["alert"] for a in ALERTS])
def test_alert_links_an_existing_runbook(alert: dict[str, Any]) -> None:
    name = alert["alert"]
    assert alert["annotations"]["runbook_url"] == f"{BASE.rstrip('/')}/{name}.md"
    assert _runbook(alert).is_file(), f"docs/runbooks/{name}.md is missing"


@pytest.mark.parametrize("alert", ALERTS, ids=[a["alert"] for a in ALERTS])
def test_runbook_names_the_alert_its_metrics_and_expression(alert: dict[str, Any]) -> None:
    text = _runbook(alert).read_text()
    name = alert["alert"]
    assert text.startswith(f"# {name}\n")
    metrics = set(METRIC.findall(alert["expr"]))
    assert metrics, f"no metric found in {alert['expr']!r}"
    for metric in metrics:
        assert metric in text, f"{name}.md does not name {metric}"
    # With the default limits, exactly as Prometheus shows it (line breaks aside).
    assert _flat(alert["expr"]) in _flat(text), f"{name}.md does not show its expression"
    assert f"`for: {alert['for']}`" in text


@pytest.mark.parametrize("alert", ALERTS, ids=[a["alert"] for a in ALERTS])
def test_alert_metrics_are_exported_or_recorded(alert: dict[str, Any]) -> None:
    """Queried series are exported (by maestro serve for the serving alerts, the operator
    for the others) or recorded from exported ones."""
    exported = _served_metrics() if alert["alert"] in SERVING else EXPORTED
    queried = set(METRIC.findall(alert["expr"]))
    for name in queried & RECORDED.keys():
        queried |= set(METRIC.findall(RECORDED[name]))
    missing = queried - RECORDED.keys() - exported
    assert not missing, f"{alert['alert']} queries metrics nothing exports: {missing}"


def test_readme_lists_every_runbook_and_the_base_url_setting() -> None:
    text = (RUNBOOKS / "README.md").read_text()
    for alert in ALERTS:
        assert f"]({alert['alert']}.md)" in text
    prefix = OperatorConfig.model_config.get("env_prefix", "")
    assert f"{prefix}RUNBOOK_BASE_URL".upper() in text
    # The default links point at this folder.
    default = OperatorConfig.model_fields["runbook_base_url"].default
    assert default.endswith("/docs/runbooks")
    assert ServingSettings(tracking_uri="", image="i").runbook_base_url == default
