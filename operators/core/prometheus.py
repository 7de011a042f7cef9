"""Canary and shadow analysis: PromQL for one revision of one ModelDeployment over a
window, and a small synchronous client for Prometheus' instant-query API.

The queries follow the serving metrics (maestro.monitoring.metric_names: requests,
request duration, shadow agreement and latency delta, each labelled with deployment and
revision). "No data" is `None`: no series at all, or NaN, which is what 0/0 gives
when the revision exists but served nothing in the window. The builders are pure; only
`PrometheusClient` does I/O (stdlib urllib, so the operator image needs nothing more).
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from maestro.monitoring import metric_names

REQUESTS = metric_names.counter(metric_names.REQUESTS)
DURATION_BUCKETS = metric_names.buckets(metric_names.REQUEST_DURATION)
SHADOW_REQUESTS = metric_names.counter(metric_names.SHADOW_REQUESTS)
SHADOW_AGREEMENTS = metric_names.counter(metric_names.SHADOW_AGREEMENTS)
SHADOW_DELTA_BUCKETS = metric_names.buckets(metric_names.SHADOW_LATENCY_DELTA)

# Prometheus' duration syntax: one or more <number><unit>, largest unit first.
_DURATION = re.compile(r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")


def validate_window(window: str) -> str:
    """Return `window` if it is a non-zero Prometheus duration such as 30s, 1m or 1h30m;
    otherwise raise ValueError naming the field."""
    if not isinstance(window, str) or not window or not _DURATION.match(window):
        raise ValueError(
            f"window: {window!r} is not a Prometheus duration (e.g. 30s, 1m, 5m, 1h30m)"
        )
    if not any(ch in "123456789" for ch in window):
        raise ValueError(f"window: {window!r} must be longer than zero")
    return window


def _quote(value: str) -> str:
    """A PromQL string literal (double quotes, Go escapes)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


@dataclass(frozen=True)
class RevisionSelector:
    """The series of one revision of one ModelDeployment.

    `namespace` narrows to the ModelDeployment's namespace (the label Prometheus adds to
    every pod target), so equal names in two namespaces never mix; None leaves it out.
    """

    deployment: str
    revision: str
    namespace: str | None = None

    def __post_init__(self) -> None:
        for name in ("deployment", "revision"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name}: must be a non-empty string, got {value!r}")
        if self.namespace is not None and (
            not isinstance(self.namespace, str) or not self.namespace
        ):
            raise ValueError(
                f"namespace: must be a non-empty string or None, got {self.namespace!r}"
            )

    def matchers(self, *extra: str) -> str:
        """`{deployment="D",revision="R"[,namespace="N"][,extra...]}`."""
        parts = [f"deployment={_quote(self.deployment)}", f"revision={_quote(self.revision)}"]
        if self.namespace is not None:
            parts.append(f"namespace={_quote(self.namespace)}")
        parts.extend(extra)
        return "{" + ",".join(parts) + "}"


def _ratio(numerator: str, denominator: str, sel: RevisionSelector, window: str) -> str:
    w = validate_window(window)
    # `or vector(0)`: a revision that never failed has no 5xx series at all, and an empty
    # numerator would make the whole ratio "no data" instead of 0.
    return (
        f"(sum(rate({numerator}[{w}])) or vector(0))"
        f" / sum(rate({denominator}{sel.matchers()}[{w}]))"
    )


def error_rate_query(sel: RevisionSelector, window: str) -> str:
    """Share of the revision's requests answered with a 5xx over `window` (0-1)."""
    server_errors = sel.matchers('code=~"5.."')
    return _ratio(f"{REQUESTS}{server_errors}", REQUESTS, sel, window)


def latency_p95_query(sel: RevisionSelector, window: str) -> str:
    """95th percentile of the revision's request duration over `window`, in seconds."""
    w = validate_window(window)
    return f"histogram_quantile(0.95, sum by (le) (rate({DURATION_BUCKETS}{sel.matchers()}[{w}])))"


def requests_query(sel: RevisionSelector, window: str) -> str:
    """Requests the revision served over `window` (all codes and protocols)."""
    return f"sum(increase({REQUESTS}{sel.matchers()}[{validate_window(window)}]))"


def shadow_agreement_query(sel: RevisionSelector, window: str) -> str:
    """Share of mirrored requests whose shadow answer agreed with the served one (0-1).

    `sel` names the series the shadowing server writes (its own deployment/revision)."""
    return _ratio(f"{SHADOW_AGREEMENTS}{sel.matchers()}", SHADOW_REQUESTS, sel, window)


def shadow_requests_query(sel: RevisionSelector, window: str) -> str:
    """Requests mirrored to the shadow over `window`."""
    return f"sum(increase({SHADOW_REQUESTS}{sel.matchers()}[{validate_window(window)}]))"


def shadow_latency_delta_p95_query(sel: RevisionSelector, window: str) -> str:
    """95th percentile of (shadow latency - served latency) over `window`, in seconds."""
    w = validate_window(window)
    return (
        f"histogram_quantile(0.95, sum by (le) (rate({SHADOW_DELTA_BUCKETS}{sel.matchers()}[{w}])))"
    )


@dataclass(frozen=True)
class RevisionMetrics:
    """One revision's figures over the analysis window; None means no data."""

    error_rate: float | None
    latency_p95_ms: float | None
    requests: float | None


@dataclass(frozen=True)
class ShadowMetrics:
    """Shadow evaluation figures over the analysis window; None means no data."""

    agreement_rate: float | None
    latency_delta_p95_ms: float | None
    requests: float | None


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector (or the value of a scalar result)."""

    labels: Mapping[str, str]
    value: float


class PrometheusUnavailable(RuntimeError):
    """Prometheus could not be reached (connection refused, timeout, DNS)."""


class PrometheusQueryError(RuntimeError):
    """Prometheus answered, but with an error or something that is not a query result."""


def _value(pair: Any, url: str) -> float:
    # Prometheus sends [<unix time>, "<value>"], the value as a string ("NaN", "+Inf" too).
    if not isinstance(pair, list) or len(pair) != 2:
        raise PrometheusQueryError(f"Prometheus at {url} sent a malformed sample: {pair!r}")
    try:
        return float(pair[1])
    except (TypeError, ValueError) as err:
        raise PrometheusQueryError(
            f"Prometheus at {url} sent a non-numeric value: {pair[1]!r}"
        ) from err


def parse_query_response(body: Any, url: str) -> list[Sample]:
    """The samples of an `/api/v1/query` response body (decoded JSON); raises
    PrometheusQueryError naming `url` for an error status or an unexpected shape."""
    if not isinstance(body, dict):
        raise PrometheusQueryError(f"Prometheus at {url} sent a non-object response: {body!r}")
    if body.get("status") != "success":
        raise PrometheusQueryError(
            f"Prometheus at {url} answered {body.get('errorType', 'error')}: "
            f"{body.get('error', body)}"
        )
    data = body.get("data")
    if not isinstance(data, dict):
        raise PrometheusQueryError(f"Prometheus at {url} sent no data: {body!r}")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return [Sample({}, _value(result, url))]
    if kind == "vector" and isinstance(result, list):
        return [
            Sample(dict(item.get("metric") or {}), _value(item.get("value"), url))
            for item in result
        ]
    raise PrometheusQueryError(
        f"Prometheus at {url} sent a {kind!r} result; an instant vector or scalar was expected"
    )


def single_value(samples: list[Sample], query: str) -> float | None:
    """The one value an aggregated query returns; None for no data (no sample, or NaN).
    Infinity stays: a quantile beyond the largest bucket is data, and worse than any limit."""
    if not samples:
        return None
    if len(samples) > 1:
        raise PrometheusQueryError(
            f"{query} returned {len(samples)} series; an aggregated query returns one"
        )
    value = samples[0].value
    return None if math.isnan(value) else value


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


class PrometheusClient:
    """Instant queries against one Prometheus (`url` is the base of its HTTP API, e.g.
    http://prometheus-operated.monitoring:9090, with any route prefix)."""

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"prometheus_url: {url!r} is not an http(s) URL")
        if not timeout > 0:
            raise ValueError(f"timeout: must be > 0 seconds, got {timeout!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """Evaluate `promql` at `at` (unix seconds; None is Prometheus' now)."""
        endpoint = f"{self.url}/api/v1/query"
        form = {"query": promql}
        if at is not None:
            form["time"] = f"{at:.3f}"
        request = urllib.request.Request(
            endpoint,
            data=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        status: int | None = None
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            # 400/422/503 carry Prometheus' JSON error, read below like any answer.
            raw, status = err.read(), err.code
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise PrometheusUnavailable(f"Prometheus unreachable at {endpoint}: {reason}") from err
        try:
            body = json.loads(raw)
        except ValueError as err:
            raise PrometheusQueryError(
                f"Prometheus at {endpoint} answered HTTP {status or 200} with something that "
                f"is not JSON: {raw[:200]!r}"
            ) from err
        try:
            samples = parse_query_response(body, endpoint)
        except PrometheusQueryError as err:
            raise PrometheusQueryError(f"{err} (query: {promql})") from None
        if status is not None:
            raise PrometheusQueryError(
                f"Prometheus at {endpoint} answered HTTP {status} for {promql}"
            )
        return samples

    def value(self, promql: str, at: float | None = None) -> float | None:
        return single_value(self.query(promql, at), promql)

    def revision_metrics(
        self, sel: RevisionSelector, window: str, at: float | None = None
    ) -> RevisionMetrics:
        """Error rate, p95 latency and request count of one revision over `window`."""
        return RevisionMetrics(
            error_rate=self.value(error_rate_query(sel, window), at),
            latency_p95_ms=_ms(self.value(latency_p95_query(sel, window), at)),
            requests=self.value(requests_query(sel, window), at),
        )

    def shadow_metrics(
        self, sel: RevisionSelector, window: str, at: float | None = None
    ) -> ShadowMetrics:
        """Agreement rate, p95 latency delta and mirrored requests over `window`."""
        return ShadowMetrics(
            agreement_rate=self.value(shadow_agreement_query(sel, window), at),
            latency_delta_p95_ms=_ms(self.value(shadow_latency_delta_p95_query(sel, window), at)),
            requests=self.value(shadow_requests_query(sel, window), at),
        )
