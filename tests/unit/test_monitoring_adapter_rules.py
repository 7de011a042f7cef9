"""prometheus-adapter's rules come from the serving contract, and the production copy in
the manifests is what the generator writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from maestro.localplatform import custom_metrics
from maestro.monitoring import adapter_rules, metric_names

pytestmark = pytest.mark.unit

SHIPPED = (
    Path(__file__).resolve().parents[2] / "manifests/components/prometheus-adapter/config.yaml"
)


def test_the_rule_serves_the_request_rate_the_hpa_asks_for() -> None:
    (rule,) = adapter_rules.rules("10s")["rules"]
    assert rule["seriesQuery"].startswith(metric_names.counter(metric_names.REQUESTS) + "{")
    assert rule["name"]["as"] == metric_names.REQUESTS_PER_SECOND
    assert "[10s]" in rule["metricsQuery"]
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}


def test_the_shipped_config_map_is_generated() -> None:
    assert SHIPPED.read_text() == adapter_rules.config_map_yaml(), (
        "regenerate it: .venv/bin/python -m maestro.monitoring.adapter_rules > "
        "manifests/components/prometheus-adapter/config.yaml"
    )
    shipped = yaml.safe_load(SHIPPED.read_text())
    assert yaml.safe_load(shipped["data"]["config.yaml"]) == adapter_rules.rules(
        adapter_rules.PRODUCTION_WINDOW
    )


def test_local_apiservices_point_at_the_adapter_on_this_host() -> None:
    docs = list(yaml.safe_load_all(custom_metrics.apiservices(10252)))
    assert docs[0]["spec"] == {"type": "ExternalName", "externalName": "localhost"}
    assert {d["metadata"]["name"] for d in docs[1:]} == {
        "v1beta2.custom.metrics.k8s.io",
        "v1beta1.custom.metrics.k8s.io",
    }
    assert all(d["spec"]["service"]["port"] == 10252 for d in docs[1:])
