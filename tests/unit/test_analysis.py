"""PromQL builders and Prometheus response parsing of the canary analysis client."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import Any

import pytest

from maestro.operators.core.prometheus import (
    PrometheusClient,
    PrometheusQueryError,
    RevisionSelector,
    Sample,
    error_rate_query,
    latency_p95_query,
    parse_query_response,
    requests_query,
    shadow_agreement_query,
    shadow_latency_delta_p95_query,
    shadow_requests_query,
    single_value,
    validate_window,
)

pytestmark = pytest.mark.unit

URL = "http://prometheus.example:9090/api/v1/query"
SEL = RevisionSelector("iris", "v3")


def test_error_rate_is_the_contract_ratio_with_a_zero_numerator_when_nothing_failed() -> None:
    assert error_rate_query(SEL, "1m") == (
        '(sum(rate(maestro_requests_total{deployment="iris",revision="v3",code=~"5.."}[1m]))'
        " or vector(0))"
        ' / sum(rate(maestro_requests_total{deployment="iris",revision="v3"}[1m]))'
    )


def test_latency_p95_is_the_contract_histogram_quantile() -> None:
    assert latency_p95_query(SEL, "1m") == (
        "histogram_quantile(0.95, sum by (le) "
        '(rate(maestro_request_duration_seconds_bucket{deployment="iris",revision="v3"}[1m])))'
    )


def test_requests_over_the_window() -> None:
    assert requests_query(SEL, "5m") == (
        'sum(increase(maestro_requests_total{deployment="iris",revision="v3"}[5m]))'
    )


def test_shadow_queries() -> None:
    matchers = '{deployment="iris",revision="v3"}'
    assert shadow_agreement_query(SEL, "2m") == (
        f"(sum(rate(maestro_shadow_agreements_total{matchers}[2m])) or vector(0))"
        f" / sum(rate(maestro_shadow_requests_total{matchers}[2m]))"
    )
    assert shadow_latency_delta_p95_query(SEL, "2m") == (
        "histogram_quantile(0.95, sum by (le) "
        f"(rate(maestro_shadow_latency_delta_seconds_bucket{matchers}[2m])))"
    )
    assert shadow_requests_query(SEL, "2m") == (
        f"sum(increase(maestro_shadow_requests_total{matchers}[2m]))"
    )


def test_a_namespace_narrows_every_selector() -> None:
    sel = RevisionSelector("iris", "v3", namespace="team-a")
    assert sel.matchers() == '{deployment="iris",revision="v3",namespace="team-a"}'
    assert 'namespace="team-a",code=~"5.."' in error_rate_query(sel, "1m")


def test_label_values_are_escaped_as_promql_strings() -> None:
    sel = RevisionSelector('a"b', "c\\d")
    assert sel.matchers() == '{deployment="a\\"b",revision="c\\\\d"}'


@pytest.mark.parametrize("window", ["30s", "1m", "5m", "1h30m", "500ms", "2d", "1w"])
def test_valid_windows(window: str) -> None:
    assert validate_window(window) == window
    assert f"[{window}]" in requests_query(SEL, window)


@pytest.mark.parametrize(
    "window", ["", "1", "m", "1 m", "-1m", "1.5m", "1m]", "30s1m", "0s", "0m0s", "1M"]
)
def test_invalid_windows_are_refused_naming_the_field(window: str) -> None:
    with pytest.raises(ValueError, match=r"^window: "):
        error_rate_query(SEL, window)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"deployment": "", "revision": "v1"}, "deployment"),
        ({"deployment": "iris", "revision": ""}, "revision"),
        ({"deployment": "iris", "revision": "v1", "namespace": ""}, "namespace"),
    ],
    ids=["deployment", "revision", "namespace"],
)
def test_empty_selector_fields_are_refused_naming_them(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        RevisionSelector(**kwargs)


def vector(*values: str, metric: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": metric or {}, "value": [1700000000.5, v]} for v in values],
        },
    }


def test_a_vector_parses_to_samples() -> None:
    body = vector("0.25", metric={"pod": "p-1"})
    assert parse_query_response(body, URL) == [Sample({"pod": "p-1"}, 0.25)]


def test_a_scalar_parses_to_one_sample() -> None:
    body = {"status": "success", "data": {"resultType": "scalar", "result": [1.0, "3"]}}
    assert parse_query_response(body, URL) == [Sample({}, 3.0)]


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (vector("0.1"), 0.1),
        (vector("0"), 0.0),
        (vector("NaN"), None),  # 0/0: the revision served nothing in the window
        (vector(), None),  # no series at all
        (vector("+Inf"), math.inf),  # beyond the largest bucket: data, worse than any limit
    ],
    ids=["ratio", "zero", "nan", "empty", "inf"],
)
def test_single_value(body: dict[str, Any], value: float | None) -> None:
    assert single_value(parse_query_response(body, URL), "q") == value


def test_several_series_for_an_aggregated_query_is_an_error() -> None:
    samples = parse_query_response(vector("1", "2"), URL)
    with pytest.raises(PrometheusQueryError, match="returned 2 series"):
        single_value(samples, "sum(x)")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"status": "error", "errorType": "bad_data", "error": "parse error"},
            "answered bad_data: parse error",
        ),
        ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "'matrix'"),
        ({"status": "success"}, "sent no data"),
        (["not", "an", "object"], "non-object"),
        (vector("abc"), "non-numeric value"),
        (
            {"status": "success", "data": {"resultType": "vector", "result": [{"value": [1]}]}},
            "malformed sample",
        ),
    ],
    ids=["error-status", "matrix", "no-data", "not-object", "not-number", "short-sample"],
)
def test_bad_responses_are_errors_naming_the_url(body: Any, message: str) -> None:
    with pytest.raises(PrometheusQueryError) as err:
        parse_query_response(body, URL)
    assert URL in str(err.value)
    assert message in str(err.value)


@pytest.mark.parametrize(
    ("url", "timeout", "field"),
    [
        ("prometheus:9090", 5.0, "prometheus_url"),
        ("ftp://prometheus:9090", 5.0, "prometheus_url"),
        ("http://prometheus:9090", 0.0, "timeout"),
    ],
    ids=["no-scheme", "not-http", "zero-timeout"],
)
def test_client_settings_are_checked(url: str, timeout: float, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        PrometheusClient(url, timeout=timeout)


def test_client_keeps_a_route_prefix_without_trailing_slash() -> None:
    assert PrometheusClient("https://mon.example/prometheus/").url == (
        "https://mon.example/prometheus"
    )


def test_the_analysis_module_imports_neither_kopf_nor_kubernetes() -> None:
    code = "import maestro.operators.core.prometheus, sys; print('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert not {"kopf", "kubernetes"} & {name.split(".")[0] for name in out.split()}
