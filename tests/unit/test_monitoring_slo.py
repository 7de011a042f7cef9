"""SLO rules: every latency threshold the API accepts selects a bucket the model server
really exports (so the SLI is never empty), and the objectives become the workbook's burn
rates. The firing behaviour is promtool's to show (tests/manifests/test_rule_files.py)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from maestro.monitoring.slo import LatencyObjective, Objectives, le_label, slo_group
from maestro.operators.api.modeldeployment import LATENCY_THRESHOLDS_MS
from maestro.serving.metrics import ServingMetrics

pytestmark = pytest.mark.unit


def exported_bounds() -> set[str]:
    registry = CollectorRegistry()
    model = ServingMetrics(registry, deployment="md", revision="v1").for_model("m", "1")
    model.request(200, "v2", 0.001)
    return {
        s.labels["le"]
        for family in registry.collect()
        for s in family.samples
        if s.name == "maestro_request_duration_seconds_bucket"
    }


@pytest.mark.parametrize("ms", LATENCY_THRESHOLDS_MS)
def test_every_accepted_threshold_is_an_exported_bucket(ms: int) -> None:
    assert le_label(ms / 1000) in exported_bounds()
    rules = slo_group("ns", "md", Objectives(latency=LatencyObjective(ms / 1000, 99)), "")
    fast = [r["expr"] for r in rules["rules"] if r.get("record", "").endswith("ratio_rate1h")]
    assert f'le="{le_label(ms / 1000)}"' in fast[0]


@pytest.mark.parametrize(
    ("percent", "budget"), [(99.9, "0.001"), (99.5, "0.005"), (99.0, "0.01"), (95.0, "0.05")]
)
def test_page_and_ticket_thresholds_are_burn_rates_of_the_budget(
    percent: float, budget: str
) -> None:
    group = slo_group("ns", "md", Objectives(availability=percent, min_requests=7), "")
    alerts = {r["alert"]: r["expr"] for r in group["rules"] if "alert" in r}
    page = alerts["MaestroModelAvailabilityBudgetBurnPage"]
    ticket = alerts["MaestroModelAvailabilityBudgetBurnTicket"]
    assert page.count(f"> (14.4 * {budget})") == 2 and page.count(f"> (6 * {budget})") == 2
    assert ticket.count(f"> (1 * {budget})") == 2
    assert page.count(">= 7") == 2 and ticket.count(">= 7") == 1
    # No latency objective: no latency rules.
    assert not any("latency" in (r.get("record") or r["alert"]).lower() for r in group["rules"])


def test_the_crd_validates_spec_slo() -> None:
    from maestro.operators.api.crdgen import crd_for
    from maestro.operators.api.modeldeployment import ModelDeployment

    schema = crd_for(ModelDeployment)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    slo = schema["properties"]["spec"]["properties"]["slo"]
    rules = [v["rule"] for v in slo["x-kubernetes-validations"]]
    assert rules == ["has(self.availability) || has(self.latency)"]
    latency = slo["properties"]["latency"]
    assert latency["properties"]["thresholdMs"]["enum"] == LATENCY_THRESHOLDS_MS
    assert set(latency["required"]) == {"thresholdMs", "percent"}
    for percent in (slo["properties"]["availability"], latency["properties"]["percent"]):
        assert percent["exclusiveMinimum"] and percent["exclusiveMaximum"]
        assert (percent["minimum"], percent["maximum"]) == (0, 100)


@pytest.mark.parametrize(
    "slo",
    [{}, {"availability": 100}, {"latency": {"thresholdMs": 300, "percent": 99}}],
    ids=["no-objective", "availability-100", "threshold-not-a-bucket"],
)
def test_the_model_refuses_what_the_crd_refuses(slo: dict[str, object]) -> None:
    from pydantic import ValidationError

    from maestro.operators.api.modeldeployment import ModelDeploymentSpec

    with pytest.raises(ValidationError):
        ModelDeploymentSpec.model_validate({"model": {"uri": "models:/iris/1"}, "slo": slo})
