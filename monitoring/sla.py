"""The SLA report of a ModelDeployment over a window (`maestro sla report`), pure.

What it reports, each figure read from the serving metrics of
maestro.monitoring.metric_names with one instant PromQL query evaluated at the window's end
(`queries()` builds them; the report carries them, so anyone can re-run them):

- requests: `sum(increase(maestro_requests_total{...}[W]))`, every code and protocol;
- errors: the same restricted to `code=~"5.."` (a 4xx is the caller's fault, not an outage);
- error rate = errors / requests; availability = 1 - error rate (the share not 5xx);
- p95, p99: `histogram_quantile` of the request-duration buckets' increase over W, summed
  over revisions and pods (estimated within a bucket by linear interpolation, as Prometheus
  does; a quantile above the last finite bound is reported as that bound);
- with a latency threshold (one of the histogram's bucket bounds): the share of requests
  answered within it, from the bucket at that bound;
- the error budget of an objective (e.g. 99.9%): the failing share it allows, 1 - objective,
  and so the errors it allows over the window; budget consumed = errors / allowed errors,
  left = 1 - consumed (negative when overspent); burn rate = error rate / allowed share,
  the multiple of the pace that spends exactly the budget over the window (1x). Over the
  report's own window burn rate and consumed share are the same number: a burn rate above 1
  is a missed objective.

The I/O (Prometheus' HTTP API, files, the command line) is maestro.monitoring.sla_cli.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from maestro.monitoring import metric_names as names
from maestro.monitoring.alerts import SERVER_ERRORS, selector
from maestro.monitoring.slo import le_label

# `maestro sla report`'s exit status besides 0 (report written), 2 (bad input) and 3
# (Prometheus unreachable or answering an error), from maestro.monitoring.contract.
EXIT_NO_TRAFFIC = 4

DEFAULT_OBJECTIVE = 99.9
DEFAULT_LATENCY_OBJECTIVE = 99.0
QUANTILES = (0.95, 0.99)

# Prometheus' duration syntax: one or more <number><unit>, largest unit first.
_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_UNIT_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)

# The latency thresholds a report accepts: the request-duration histogram's bucket bounds,
# in milliseconds (the share within a threshold is read from the bucket at that bound).
LATENCY_THRESHOLDS_MS = tuple(b * 1000 for b in names.REQUEST_DURATION_BUCKETS)


@dataclass(frozen=True)
class Window:
    """A report window: Prometheus' duration text (used as written in the queries) and its
    length in seconds."""

    text: str
    seconds: float


def parse_window(text: str) -> Window:
    """`30d`, `7d`, `4w`, `1h30m`, ... ; ValueError for anything else or a zero window."""
    match = _DURATION.match(text.strip()) if text else None
    if not text or match is None or not any(match.groups()):
        raise ValueError(
            f"{text!r} is not a Prometheus duration: a number and a unit (ms, s, m, h, d, w,"
            " y), largest unit first, e.g. 30d, 7d, 12h, 1h30m"
        )
    seconds = sum(
        int(value) * unit
        for value, unit in zip(match.groups(), _UNIT_SECONDS, strict=True)
        if value
    )
    if seconds <= 0:
        raise ValueError(f"{text!r} is zero; give a window longer than zero, e.g. 30d")
    return Window(text.strip(), seconds)


def parse_objective(text: str) -> float:
    """A percent strictly between 0 and 100, e.g. 99.9."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number (a percent such as 99.9)") from None
    if not 0 < value < 100:
        raise ValueError(f"{text!r} must be a percent strictly between 0 and 100, e.g. 99.9")
    return value


def parse_threshold_ms(text: str) -> float:
    """A latency threshold in milliseconds that is one of the histogram's bucket bounds."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    for bound in LATENCY_THRESHOLDS_MS:
        if math.isclose(value, bound, rel_tol=1e-9):
            return bound
    allowed = ", ".join(f"{b:g}" for b in LATENCY_THRESHOLDS_MS)
    raise ValueError(f"{text!r} is not a bucket bound of the latency histogram (ms): {allowed}")


def parse_time(text: str) -> float:
    """Unix seconds, or an RFC 3339 / ISO 8601 time (a time without offset is UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither unix seconds nor an RFC 3339 time such as 2026-11-01T00:00:00Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


# --- the queries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What a report covers: one ModelDeployment's series over one window."""

    deployment: str
    window: Window
    namespace: str | None = None
    latency_threshold_ms: float | None = None

    def matchers(self, *more: str) -> str:
        labels = {"deployment": self.deployment}
        if self.namespace is not None:
            labels["namespace"] = self.namespace
        return selector(*more, **labels)


REQUESTS = "requests"
ERRORS = "errors"
P95 = "p95"
P99 = "p99"
WITHIN_THRESHOLD = "within_threshold"
TIMED = "timed"
REVISION_REQUESTS = "revision_requests"
REVISION_ERRORS = "revision_errors"
NAMESPACES = "namespaces"


def queries(target: Target) -> dict[str, str]:
    """Every PromQL instant query of the report, by figure (pure)."""
    w = target.window.text
    requests = names.counter(names.REQUESTS)
    buckets = names.buckets(names.REQUEST_DURATION)
    total = f"increase({requests}{target.matchers()}[{w}])"
    errors = f"increase({requests}{target.matchers(SERVER_ERRORS)}[{w}])"
    by_le = f"sum by (le) (increase({buckets}{target.matchers()}[{w}]))"
    built = {
        REQUESTS: f"sum({total})",
        ERRORS: f"sum({errors})",
        P95: f"histogram_quantile(0.95, {by_le})",
        P99: f"histogram_quantile(0.99, {by_le})",
        REVISION_REQUESTS: f"sum by (revision) ({total})",
        REVISION_ERRORS: f"sum by (revision) ({errors})",
    }
    if target.latency_threshold_ms is not None:
        le = le_label(target.latency_threshold_ms / 1000)
        fast = target.matchers(f'le="{le}"')
        count = names.count(names.REQUEST_DURATION)
        built[WITHIN_THRESHOLD] = f"sum(increase({buckets}{fast}[{w}]))"
        built[TIMED] = f"sum(increase({count}{target.matchers()}[{w}]))"
    if target.namespace is None:
        # The same name in two namespaces is two deployments: the report asks which.
        built[NAMESPACES] = f"sum by (namespace) ({total})"
    return built


# --- the figures ---------------------------------------------------------------------------

# An instant vector as the report reads it: each sample's labels and value.
Sample = tuple[Mapping[str, str], float]


def scalar(vector: list[Sample]) -> float | None:
    """The one value of an aggregated instant vector; None for no series or NaN."""
    if not vector:
        return None
    value = vector[0][1]
    return None if math.isnan(value) else value


def by_label(vector: list[Sample], label: str) -> dict[str, float]:
    return {labels.get(label, ""): value for labels, value in vector if not math.isnan(value)}


def ratio(part: float | None, whole: float | None) -> float | None:
    if part is None or whole is None or whole <= 0:
        return None
    return part / whole


@dataclass(frozen=True)
class Budget:
    """The error budget of one objective over the window."""

    objective_percent: float
    allowed_ratio: float  # 1 - objective: the failing share the objective allows
    allowed: float | None  # failing requests it allows over the window
    failed: float | None
    consumed: float | None  # share of the budget spent: failed / allowed
    left: float | None  # 1 - consumed; negative when overspent
    left_requests: float | None  # allowed - failed
    burn_rate: float | None  # failing share / allowed share
    met: bool | None


def budget(objective_percent: float, failed: float | None, total: float | None) -> Budget:
    """The budget of an objective given the failing and all requests of the window (pure)."""
    allowed_ratio = round(1 - objective_percent / 100, 12)
    failing_share = ratio(failed, total)
    if failing_share is None or total is None or failed is None:
        return Budget(objective_percent, allowed_ratio, None, None, None, None, None, None, None)
    allowed = allowed_ratio * total
    burn = failing_share / allowed_ratio
    return Budget(
        objective_percent=objective_percent,
        allowed_ratio=allowed_ratio,
        allowed=allowed,
        failed=failed,
        consumed=burn,
        left=1 - burn,
        left_requests=allowed - failed,
        burn_rate=burn,
        met=burn <= 1,
    )


@dataclass(frozen=True)
class Revision:
    name: str
    requests: float
    errors: float
    availability: float | None


@dataclass(frozen=True)
class Latency:
    """The latency SLI: the share of requests answered within a threshold."""

    threshold_ms: float
    within: float | None  # requests answered within the threshold
    timed: float | None  # requests the histogram counted
    share: float | None
    budget: Budget


@dataclass(frozen=True)
class Report:
    deployment: str
    namespace: str | None
    window: Window
    end: float  # unix seconds: the queries' evaluation time
    requests: float | None
    errors: float | None
    error_rate: float | None
    availability: float | None
    p95_seconds: float | None
    p99_seconds: float | None
    budget: Budget
    latency: Latency | None
    revisions: tuple[Revision, ...]
    queries: Mapping[str, str] = field(default_factory=dict)

    @property
    def start(self) -> float:
        return self.end - self.window.seconds

    @property
    def no_traffic(self) -> bool:
        return not self.requests


def build_report(
    target: Target,
    end: float,
    results: Mapping[str, list[Sample]],
    *,
    objective: float = DEFAULT_OBJECTIVE,
    latency_objective: float = DEFAULT_LATENCY_OBJECTIVE,
) -> Report:
    """The report from the answers to `queries(target)` (pure)."""
    requests = scalar(results[REQUESTS])
    # No 5xx series at all is no error, once there is traffic.
    errors = scalar(results[ERRORS])
    if errors is None and requests is not None:
        errors = 0.0
    error_rate = ratio(errors, requests)
    latency = None
    if target.latency_threshold_ms is not None:
        within = scalar(results[WITHIN_THRESHOLD])
        timed = scalar(results[TIMED])
        slow = None if within is None or timed is None else max(timed - within, 0.0)
        latency = Latency(
            threshold_ms=target.latency_threshold_ms,
            within=within,
            timed=timed,
            share=ratio(within, timed),
            budget=budget(latency_objective, slow, timed),
        )
    served = by_label(results[REVISION_REQUESTS], "revision")
    failed = by_label(results[REVISION_ERRORS], "revision")
    revisions = tuple(
        Revision(
            name=name,
            requests=count,
            errors=failed.get(name, 0.0),
            availability=None if count <= 0 else 1 - failed.get(name, 0.0) / count,
        )
        for name, count in sorted(served.items())
    )
    return Report(
        deployment=target.deployment,
        namespace=target.namespace,
        window=target.window,
        end=end,
        requests=requests,
        errors=errors,
        error_rate=error_rate,
        availability=None if error_rate is None else 1 - error_rate,
        p95_seconds=scalar(results[P95]) if requests else None,
        p99_seconds=scalar(results[P99]) if requests else None,
        budget=budget(objective, errors, requests),
        latency=latency,
        revisions=revisions,
        queries=queries(target),
    )


def namespaces_with_traffic(results: Mapping[str, list[Sample]]) -> list[str]:
    """The namespaces where the deployment name served requests (when none was given)."""
    counts = by_label(results.get(NAMESPACES, []), "namespace")
    return sorted(ns for ns, count in counts.items() if count > 0)


# --- renderings ----------------------------------------------------------------------------

NO_DATA = "no data"


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _pct(value: float | None, digits: int = 4) -> str:
    return NO_DATA if value is None else f"{value * 100:.{digits}f}%"


def _ms(seconds: float | None) -> str:
    return NO_DATA if seconds is None else f"{seconds * 1000:.2f} ms"


def _count(value: float | None) -> str:
    return NO_DATA if value is None else f"{value:,.0f}"


def _times(value: float | None) -> str:
    return NO_DATA if value is None else f"{value:.3f}x"


def _verdict(met: bool | None) -> str:
    return NO_DATA if met is None else ("met" if met else "MISSED")


def _where(report: Report) -> str:
    ns = report.namespace if report.namespace is not None else "(all namespaces)"
    return f"{ns}/{report.deployment}"


def _budget_rows(b: Budget, what: str) -> list[tuple[str, str]]:
    # The availability budget is the report's main one; the latency one says whose it is.
    of = "" if what == "availability" else f"{what} "
    return [
        (f"{what} objective", f"{b.objective_percent:g}% ({_verdict(b.met)})"),
        (f"{what} error budget", f"{_pct(b.allowed_ratio, 3)} = {_count(b.allowed)} requests"),
        (f"{of}budget consumed", f"{_pct(b.consumed, 2)} ({_count(b.failed)} requests)"),
        (f"{of}budget left", f"{_pct(b.left, 2)} ({_count(b.left_requests)} requests)"),
        (f"{of}burn rate", _times(b.burn_rate)),
    ]


def rows(report: Report) -> list[tuple[str, str]]:
    """The report's figures as (name, formatted value), in the order every rendering uses."""
    out = [
        ("deployment", _where(report)),
        ("window", f"{report.window.text}: {_iso(report.start)} .. {_iso(report.end)}"),
        ("requests", _count(report.requests)),
        ("errors (5xx)", _count(report.errors)),
        ("availability", _pct(report.availability)),
        ("error rate", _pct(report.error_rate)),
        ("latency p95", _ms(report.p95_seconds)),
        ("latency p99", _ms(report.p99_seconds)),
        *_budget_rows(report.budget, "availability"),
    ]
    if report.latency is not None:
        lat = report.latency
        out += [
            (f"within {lat.threshold_ms:g} ms", f"{_pct(lat.share)} ({_count(lat.within)})"),
            *_budget_rows(lat.budget, "latency"),
        ]
    return out


def render_text(report: Report) -> str:
    table = rows(report)
    width = max(len(name) for name, _ in table)
    lines = [f"SLA report of {_where(report)}"]
    lines += [f"  {name.ljust(width)}  {value}" for name, value in table]
    if report.revisions:
        header = ("revision", "requests", "errors (5xx)", "availability")
        cells = [
            (r.name, _count(r.requests), _count(r.errors), _pct(r.availability))
            for r in report.revisions
        ]
        widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
        lines.append("")
        for row in [header, *cells]:
            figures = (cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True))
            lines.append("  " + row[0].ljust(widths[0]) + "  " + "  ".join(figures))
    if report.no_traffic:
        lines.append("")
        lines.append(f"  {no_traffic_message(report)}")
    return "\n".join(lines) + "\n"


def _budget_json(b: Budget) -> dict[str, Any]:
    return {
        "objectivePercent": b.objective_percent,
        "allowedRatio": b.allowed_ratio,
        "allowedRequests": b.allowed,
        "failedRequests": b.failed,
        "consumed": b.consumed,
        "left": b.left,
        "leftRequests": b.left_requests,
        "burnRate": b.burn_rate,
        "met": b.met,
    }


def to_json(report: Report) -> dict[str, Any]:
    """The report as JSON data: ratios in 0-1, latencies in seconds; null is no data."""
    latency = report.latency
    return {
        "deployment": report.deployment,
        "namespace": report.namespace,
        "window": report.window.text,
        "windowSeconds": report.window.seconds,
        "start": _iso(report.start),
        "end": _iso(report.end),
        "endUnix": report.end,
        "noTraffic": report.no_traffic,
        "requests": report.requests,
        "errors": report.errors,
        "errorRate": report.error_rate,
        "availability": report.availability,
        "latencyP95Seconds": report.p95_seconds,
        "latencyP99Seconds": report.p99_seconds,
        "errorBudget": _budget_json(report.budget),
        "latencySli": None
        if latency is None
        else {
            "thresholdMs": latency.threshold_ms,
            "withinThreshold": latency.within,
            "timedRequests": latency.timed,
            "share": latency.share,
            "errorBudget": _budget_json(latency.budget),
        },
        "revisions": [
            {
                "revision": r.name,
                "requests": r.requests,
                "errors": r.errors,
                "availability": r.availability,
            }
            for r in report.revisions
        ],
        "queries": dict(report.queries),
    }


def render_json(report: Report) -> str:
    return json.dumps(to_json(report), indent=2) + "\n"


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:60em}
table{border-collapse:collapse;margin:1em 0}
td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
th{font-weight:600}.met{color:#1b5e20}.missed{color:#b00020;font-weight:600}.nodata{color:#777}
code{font-size:.85em;word-break:break-all}
"""


def render_html(report: Report) -> str:
    """One self-contained page (inline style, no script, no external asset); every value
    is HTML-escaped."""
    esc = html.escape
    met = report.budget.met
    status = "nodata" if met is None else ("met" if met else "missed")
    figures = "\n".join(
        f"<tr><th>{esc(name)}</th><td>{esc(value)}</td></tr>" for name, value in rows(report)
    )
    revisions = "\n".join(
        f"<tr><td>{esc(r.name)}</td><td>{esc(_count(r.requests))}</td>"
        f"<td>{esc(_count(r.errors))}</td><td>{esc(_pct(r.availability))}</td></tr>"
        for r in report.revisions
    )
    promql = "\n".join(
        f"<tr><th>{esc(name)}</th><td><code>{esc(query)}</code></td></tr>"
        for name, query in report.queries.items()
    )
    summary = (
        no_traffic_message(report)
        if report.no_traffic
        else f"Availability objective {report.budget.objective_percent:g}%: "
        f"{_verdict(met)}, burn rate {_times(report.budget.burn_rate)}."
    )
    title = f"SLA report: {_where(report)} over {report.window.text}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>{_STYLE}</style></head>
<body><h1>{esc(title)}</h1>
<p class="{status}">{esc(summary)}</p>
<table>
{figures}
</table>
<h2>Revisions</h2>
<table><tr><th>revision</th><th>requests</th><th>errors (5xx)</th><th>availability</th></tr>
{revisions}
</table>
<h2>Queries</h2>
<p>Instant queries evaluated at {esc(_iso(report.end))}.</p>
<table>
{promql}
</table>
</body></html>
"""


RENDERERS = {"text": render_text, "json": render_json, "html": render_html}


def no_traffic_message(report: Report) -> str:
    if report.requests is None:
        return (
            f"no data: no maestro_requests_total series of {_where(report)} in the"
            f" {report.window.text} window; check the deployment name and --namespace"
            " (the deployment and namespace labels) and that Prometheus scrapes its pods"
        )
    return (
        f"no data: {_where(report)} served no requests in the {report.window.text} window"
        f" ending {_iso(report.end)}; availability, latency and budget are not defined"
    )
