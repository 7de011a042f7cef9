"""Every serving alert links a runbook in docs/runbooks that names the alert, the metrics of
its expression and the expression itself, so an alert added or changed without its runbook
fails here."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client import CollectorRegistry

from maestro.operators.api.modeldeployment import ModelDeploymentSpec
from maestro.operators.core.settings import OperatorConfig
from maestro.operators.modeldeployment.render import (
    DeploymentIds,
    ServingSettings,
    render_prometheus_rule,
)
from maestro.serving.metrics import ServingMetrics

pytestmark = pytest.mark.unit

RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
BASE = "https://runbooks.example.com/maestro/"
# The placeholders the runbooks write their PromQL with.
IDS = DeploymentIds(namespace="<ns>", name="<md>", uid="00000000-0000-0000-0000-000000000000")
SPEC = ModelDeploymentSpec.model_validate({"model": {"uri": "models:/iris/3"}})
SETTINGS = ServingSettings(
    tracking_uri="http://mlflow:5000", image="maestro", runbook_base_url=BASE
)
# A metric name directly followed by its label matchers.
METRIC = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")


def _alerts() -> list[dict[str, Any]]:
    rule = render_prometheus_rule(IDS, SPEC, SETTINGS)
    return [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]


ALERTS = _alerts()


def _flat(text: str) -> str:
    return " ".join(text.split())


def _runbook(alert: dict[str, Any]) -> Path:
    return RUNBOOKS / PurePosixPath(urlsplit(alert["annotations"]["runbook_url"]).path).name


def _exported_metrics() -> set[str]:
    """Sample names a model server exports once its model is loaded and has answered."""
    registry = CollectorRegistry()
    model = ServingMetrics(registry, deployment="md", revision="v1").for_model("m", "1")
    model.loaded(0.1)
    model.request(200, "v2", 0.001)
    return {sample.name for family in registry.collect() for sample in family.samples}


def test_there_are_alerts() -> None:
    assert len(ALERTS) >= 3


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
def test_alert_metrics_are_exported_by_the_model_server(alert: dict[str, Any]) -> None:
    missing = set(METRIC.findall(alert["expr"])) - _exported_metrics()
    assert not missing, f"{alert['alert']} queries metrics maestro serve does not export"


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
