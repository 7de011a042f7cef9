"""The pure pieces of `maestro sla report`: flag parsing, the PromQL it sends, the budget
arithmetic, the report built from query answers, and its text, JSON and HTML renderings.
The figures against a real Prometheus: tests/integration/test_sla_report.py."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from maestro.monitoring import sla
from maestro.monitoring.sla_cli import PrometheusUnavailable, _vector
from maestro.operators.cli import main

pytestmark = pytest.mark.unit

DAY = 86400


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * DAY), ("4w", 28 * DAY), ("1h30m", 5400), ("90s", 90), ("1y", 365 * DAY)],
)
def test_windows_are_prometheus_durations(text: str, seconds: float) -> None:
    window = sla.parse_window(text)
    assert window == sla.Window(text, seconds)


@pytest.mark.parametrize("text", ["30x", "", "d", "30D", "0d", "30 d", "1m1h", "-1d", "1.5d"])
def test_bad_windows_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match=r"30d"):
        sla.parse_window(text)


@pytest.mark.parametrize("text", ["0", "100", "-1", "abc", "nan"])
def test_objectives_are_percents_strictly_inside_0_100(text: str) -> None:
    with pytest.raises(ValueError, match="percent"):
        sla.parse_objective(text)


def test_latency_thresholds_are_bucket_bounds() -> None:
    assert sla.parse_threshold_ms("250") == 250
    assert sla.parse_threshold_ms("0.5") == 0.5
    with pytest.raises(ValueError, match="bucket bound"):
        sla.parse_threshold_ms("300")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1761955200", 1761955200.0),
        ("2025-11-01T00:00:00Z", 1761955200.0),
        ("2025-11-01T01:00:00+01:00", 1761955200.0),
        ("2025-11-01T00:00:00", 1761955200.0),
    ],
)
def test_end_times(text: str, seconds: float) -> None:
    assert sla.parse_time(text) == seconds


def test_bad_end_time() -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        sla.parse_time("yesterday")


def target(**overrides: Any) -> sla.Target:
    fields: dict[str, Any] = {
        "deployment": "iris",
        "window": sla.parse_window("30d"),
        "namespace": "ml",
        "latency_threshold_ms": None,
    }
    fields.update(overrides)
    return sla.Target(**fields)


def test_the_queries_read_the_serving_metrics_over_the_window() -> None:
    q = sla.queries(target(latency_threshold_ms=250))
    sel = '{deployment="iris",namespace="ml"}'
    assert q[sla.REQUESTS] == f"sum(increase(maestro_requests_total{sel}[30d]))"
    assert q[sla.ERRORS] == (
        'sum(increase(maestro_requests_total{deployment="iris",namespace="ml",code=~"5.."}[30d]))'
    )
    by_le = f"sum by (le) (increase(maestro_request_duration_seconds_bucket{sel}[30d]))"
    assert q[sla.P95] == f"histogram_quantile(0.95, {by_le})"
    assert q[sla.P99] == f"histogram_quantile(0.99, {by_le})"
    assert q[sla.WITHIN_THRESHOLD] == (
        "sum(increase(maestro_request_duration_seconds_bucket"
        '{deployment="iris",namespace="ml",le="0.25"}[30d]))'
    )
    assert q[sla.TIMED] == f"sum(increase(maestro_request_duration_seconds_count{sel}[30d]))"
    assert q[sla.REVISION_REQUESTS].startswith("sum by (revision) (increase(")
    # A namespace was given: no need to look for the name in others.
    assert sla.NAMESPACES not in q


def test_without_namespace_the_report_looks_for_the_name_everywhere() -> None:
    q = sla.queries(target(namespace=None))
    assert q[sla.REQUESTS] == 'sum(increase(maestro_requests_total{deployment="iris"}[30d]))'
    assert q[sla.NAMESPACES].startswith("sum by (namespace) (")
    assert sla.WITHIN_THRESHOLD not in q


def test_label_values_are_quoted_as_promql_strings() -> None:
    q = sla.queries(target(deployment='a"b\\c'))
    assert 'deployment="a\\"b\\\\c"' in q[sla.REQUESTS]


@pytest.mark.parametrize(
    ("objective", "failed", "total", "allowed", "consumed", "met"),
    [
        (99.9, 5, 10_000, 10, 0.5, True),
        (99.9, 0, 10_000, 10, 0.0, True),
        (99.9, 10, 10_000, 10, 1.0, True),
        (99.9, 20, 10_000, 10, 2.0, False),
        (99.0, 50, 1_000, 10, 5.0, False),
        (95.0, 25, 1_000, 50, 0.5, True),
    ],
    ids=["half", "none", "exactly", "overspent", "5x", "95"],
)
def test_budget_arithmetic(
    objective: float, failed: float, total: float, allowed: float, consumed: float, met: bool
) -> None:
    b = sla.budget(objective, failed, total)
    assert b.allowed_ratio == pytest.approx(1 - objective / 100)
    assert b.allowed == pytest.approx(allowed)
    assert b.consumed == pytest.approx(consumed)
    assert b.left == pytest.approx(1 - consumed)
    assert b.left_requests == pytest.approx(allowed - failed)
    # Over the report's own window the burn rate is the share consumed.
    assert b.burn_rate == pytest.approx((failed / total) / (1 - objective / 100))
    assert b.burn_rate == pytest.approx(b.consumed)
    assert b.met is met


@pytest.mark.parametrize(("failed", "total"), [(None, None), (0.0, 0.0), (None, 10.0)])
def test_no_traffic_has_no_budget_figures(failed: float | None, total: float | None) -> None:
    b = sla.budget(99.9, failed, total)
    assert b.allowed_ratio == pytest.approx(0.001)
    assert (b.allowed, b.consumed, b.left, b.burn_rate, b.met) == (None, None, None, None, None)


def answers(**overrides: list[sla.Sample]) -> dict[str, list[sla.Sample]]:
    base: dict[str, list[sla.Sample]] = {
        sla.REQUESTS: [({}, 10_000.0)],
        sla.ERRORS: [({}, 8.0)],
        sla.P95: [({}, 0.04)],
        sla.P99: [({}, 0.2)],
        sla.REVISION_REQUESTS: [({"revision": "v2"}, 2_000.0), ({"revision": "v1"}, 8_000.0)],
        sla.REVISION_ERRORS: [({"revision": "v2"}, 8.0)],
        sla.WITHIN_THRESHOLD: [({}, 9_950.0)],
        sla.TIMED: [({}, 10_000.0)],
    }
    base.update(overrides)
    return base


END = 1_761_955_200.0


def test_the_report_from_the_answers() -> None:
    r = sla.build_report(target(latency_threshold_ms=250), END, answers(), objective=99.9)
    assert (r.requests, r.errors) == (10_000, 8)
    assert r.error_rate == pytest.approx(0.0008)
    assert r.availability == pytest.approx(0.9992)
    assert (r.p95_seconds, r.p99_seconds) == (0.04, 0.2)
    assert r.budget.consumed == pytest.approx(0.8) and r.budget.met
    assert r.start == END - 30 * DAY
    # Revisions sorted by name; one without 5xx series has none.
    assert [(v.name, v.errors) for v in r.revisions] == [("v1", 0.0), ("v2", 8.0)]
    assert r.revisions[1].availability == pytest.approx(1 - 8 / 2000)
    assert r.latency is not None
    assert r.latency.share == pytest.approx(0.995)
    assert r.latency.budget.consumed == pytest.approx(0.005 / 0.01)
    assert not r.no_traffic


def test_no_5xx_series_is_no_error() -> None:
    r = sla.build_report(target(), END, answers(**{sla.ERRORS: []}))
    assert r.errors == 0 and r.availability == 1 and r.budget.left == 1


@pytest.mark.parametrize(
    ("requests", "says"),
    [([], "check the deployment name"), ([({}, 0.0)], "served no requests")],
    ids=["no-series", "no-increase"],
)
def test_no_traffic(requests: list[sla.Sample], says: str) -> None:
    r = sla.build_report(
        target(),
        END,
        answers(
            **{
                sla.REQUESTS: requests,
                sla.ERRORS: [],
                sla.P95: [({}, math.nan)],
                sla.P99: [({}, math.nan)],
                sla.REVISION_REQUESTS: [],
                sla.REVISION_ERRORS: [],
            }
        ),
    )
    assert r.no_traffic
    assert (r.availability, r.error_rate, r.p95_seconds, r.budget.burn_rate) == (None,) * 4
    assert says in sla.no_traffic_message(r)
    data = sla.to_json(r)
    assert data["noTraffic"] is True and data["availability"] is None
    text = sla.render_text(r)
    assert text.count(sla.NO_DATA) >= 5 and says in text


def test_namespaces_with_traffic() -> None:
    found = sla.namespaces_with_traffic(
        {sla.NAMESPACES: [({"namespace": "b"}, 3.0), ({"namespace": "a"}, 1.0), ({}, 0.0)]}
    )
    assert found == ["a", "b"]


def report(**overrides: Any) -> sla.Report:
    return sla.build_report(target(latency_threshold_ms=250, **overrides), END, answers())


def test_text_shows_every_figure() -> None:
    text = sla.render_text(report())
    for figure in (
        "10,000",
        "99.9200%",
        "0.0800%",
        "40.00 ms",
        "200.00 ms",
        "99.9% (met)",
        "80.00%",
        "20.00%",
        "0.800x",
        "within 250 ms",
        "99.5000%",
        "2025-10-02T00:00:00Z .. 2025-11-01T00:00:00Z",
    ):
        assert figure in text, figure


def test_json_is_the_figures_unformatted() -> None:
    r = report()
    data = json.loads(sla.render_json(r))
    assert data["availability"] == r.availability
    assert data["latencyP99Seconds"] == 0.2
    assert data["errorBudget"]["consumed"] == r.budget.consumed
    assert data["latencySli"]["thresholdMs"] == 250
    assert data["queries"] == sla.queries(target(latency_threshold_ms=250))
    assert data["end"] == "2025-11-01T00:00:00Z" and data["endUnix"] == END


def test_html_is_one_escaped_self_contained_page() -> None:
    hostile = "<script>alert('x')</script>&"
    page = sla.render_html(report(deployment=hostile, namespace='ns"><b>'))
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;" in page
    assert "ns&quot;&gt;&lt;b&gt;" in page
    assert "src=" not in page and "<link" not in page and "http" not in page
    assert "99.9200%" in page and "0.800x" in page
    # The PromQL, quotes and all, is escaped.
    assert "code=~&quot;5..&quot;" in page


def test_prometheus_answers() -> None:
    vector = {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {"a": "1"}, "value": [1, "2.5"]}]},
    }
    assert _vector("u", "q", vector) == [({"a": "1"}, 2.5)]
    scalar = {"status": "success", "data": {"resultType": "scalar", "result": [1, "NaN"]}}
    assert math.isnan(_vector("u", "q", scalar)[0][1])
    error = {"status": "error", "errorType": "bad_data", "error": "parse error"}
    with pytest.raises(PrometheusUnavailable, match="bad_data: parse error"):
        _vector("http://p", "q", error)


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--window", "30x"], "--window"),
        (["--window", "30d", "--format", "pdf"], "--format"),
        (["--window", "30d", "--objective", "100"], "--objective"),
        (["--window", "30d", "--latency-threshold-ms", "300"], "--latency-threshold-ms"),
        (["--window", "30d", "--end", "soon"], "--end"),
        ([], "--window"),
    ],
    ids=["window", "format", "objective", "threshold", "end", "missing-window"],
)
def test_bad_flags_exit_2_naming_the_flag(
    capsys: pytest.CaptureFixture[str], args: list[str], flag: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["sla", "report", "--deployment", "iris", "--prometheus", "http://p", *args])
    assert exited.value.code == 2
    assert flag in capsys.readouterr().err


def test_help_explains_the_figures_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["sla", "report", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for word in ("availability", "p95/p99", "burn rate", "budget left", "exit status", " 4 "):
        assert word in out, word
