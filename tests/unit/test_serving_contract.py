"""The operator <-> model server contract (maestro.serving.contract): what the operator
renders into a serving container is what `maestro serve` reads, and the metric names the
server exports are the ones the analysis queries."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from maestro.monitoring import metric_names
from maestro.operators.api.modeldeployment import ModelDeploymentSpec
from maestro.operators.core import prometheus
from maestro.operators.modeldeployment.decide import Revision, Role
from maestro.operators.modeldeployment.render import DeploymentIds, ServingSettings, server_env
from maestro.serving import contract
from maestro.serving.metrics import ServingMetrics
from maestro.serving.settings import ServeSettings

pytestmark = pytest.mark.unit

IDS = DeploymentIds(namespace="ml", name="iris", uid="u-1")
SPEC = ModelDeploymentSpec.model_validate(
    {"model": {"uri": "models:/iris@champion", "name": "iris-classifier"}, "port": 9090}
)
REVISION = Revision(
    name="v4", model_uri="models:/iris/4", role=Role.STABLE, replicas=1, max_replicas=3
)


def rendered_env(settings: ServingSettings) -> dict[str, str]:
    # The kubelet expands $(POD_NAME) from the downward API; do the same for one pod.
    env = {}
    for var in server_env(IDS, SPEC, REVISION, settings):
        value = var.get("value", "iris-v4-abc12")
        env[var["name"]] = value.replace("$(POD_NAME)", env.get(contract.POD_NAME, ""))
    return env


@pytest.mark.parametrize(
    "log_dir", [None, "/var/log/maestro"], ids=["no-prediction-log", "prediction-log"]
)
def test_the_server_reads_what_the_operator_renders(
    monkeypatch: pytest.MonkeyPatch, log_dir: str | None
) -> None:
    settings = ServingSettings(
        tracking_uri="http://mlflow:5000",
        image="maestro:test",
        prediction_log_dir=log_dir,
        prediction_log_sample=0.25,
    )
    env = rendered_env(settings)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    served = ServeSettings()
    assert served.model_uri == REVISION.model_uri
    assert served.model_name == "iris-classifier"
    assert served.port == 9090
    assert served.tracking_uri == "http://mlflow:5000"
    assert (served.deployment, served.revision, served.model_version) == ("iris", "v4", "4")
    if log_dir is None:
        assert served.prediction_log is None
    else:
        assert str(served.prediction_log) == f"{log_dir}/ml/iris/v4/iris-v4-abc12.jsonl"
        assert served.prediction_log_sample == 0.25


def test_every_rendered_serve_variable_is_a_server_setting() -> None:
    settings = ServingSettings(
        tracking_uri="http://mlflow:5000", image="maestro:test", prediction_log_dir="/logs"
    )
    fields = {contract.SERVE_PREFIX + name.upper() for name in ServeSettings.model_fields}
    rendered = {n for n in rendered_env(settings) if n.startswith(contract.SERVE_PREFIX)}
    assert rendered and rendered <= fields, rendered - fields


def test_the_analysis_queries_the_series_the_server_exports() -> None:
    registry = CollectorRegistry()
    model = ServingMetrics(registry, deployment="iris", revision="v4").for_model("iris", "4")
    model.loaded(0.5)
    model.request(200, "v2", 0.002)
    model.shadow_delta.observe(0.001)
    series = {
        (sample.name, tuple(sorted(sample.labels)))
        for family in registry.collect()
        for sample in family.samples
    }
    names = {name for name, _ in series}
    queried = (
        prometheus.REQUESTS,
        prometheus.DURATION_BUCKETS,
        prometheus.SHADOW_REQUESTS,
        prometheus.SHADOW_AGREEMENTS,
        prometheus.SHADOW_DELTA_BUCKETS,
        metric_names.MODEL_INFO,
    )
    assert set(queried) <= names, set(queried) - names
    # Every series the analysis and the alert rules select on carries the contract labels.
    for name, labels in series:
        if name in queried:
            assert set(metric_names.LABELS) <= set(labels), (name, labels)


def test_every_queried_series_exists_at_zero_before_the_first_request() -> None:
    """rate() sees an increase only between two scrapes of a series: one that appears with
    its first observation loses every event before the next scrape."""
    registry = CollectorRegistry()
    ServingMetrics(registry, deployment="iris", revision="v4").for_model("iris", "4").loaded(0.5)
    present = {s.name for f in registry.collect() for s in f.samples}
    for name in (
        prometheus.DURATION_BUCKETS,
        prometheus.SHADOW_REQUESTS,
        prometheus.SHADOW_AGREEMENTS,
        prometheus.SHADOW_DELTA_BUCKETS,
    ):
        assert name in present, name
