"""SLOs of a ModelDeployment as Prometheus rules, pure: recording rules for the SLIs over
each window, and multi-window multi-burn-rate alerts as the Google SRE workbook
("Alerting on SLOs", recommendation 6) sets them out:

| severity          | burn rate | long window | short window | budget spent |
|-------------------|-----------|-------------|--------------|--------------|
| page (critical)   | 14.4x     | 1h          | 5m           | 2% in 1h     |
| page (critical)   | 6x        | 6h          | 30m          | 5% in 6h     |
| ticket (warning)  | 1x        | 3d          | 6h           | 10% in 3d    |

An alert fires when the error ratio is above burn rate x error budget over both its long
window (it is significant) and its short one (it is still happening, so the alert resolves
soon after the burn stops).

The minimum-traffic guard: an alert also needs at least `min_requests` requests in its
long window. With little traffic one error is a large ratio, and "one failed request at
3 a.m." would burn the budget 14.4x over; below the guard the page stays quiet (the slower
ticket still sees a sustained problem once enough requests add up).

Two SLIs, each optional:
- availability: the share of prediction requests not answered 5xx;
- latency: the share answered within a threshold, counted from the request-duration
  histogram's bucket at that bound (the threshold is one of its bucket bounds).
"""

from __future__ import annotations

from dataclasses import dataclass

from maestro.monitoring import metric_names as names
from maestro.monitoring.alerts import SERVER_ERRORS, Group, Rule, alert, selector


@dataclass(frozen=True)
class BurnRate:
    factor: float
    long: str
    short: str


PAGE = (BurnRate(14.4, "1h", "5m"), BurnRate(6, "6h", "30m"))
TICKET = (BurnRate(1, "3d", "6h"),)
WINDOWS = ("5m", "30m", "1h", "6h", "3d")
LONG_WINDOWS = ("1h", "6h", "3d")
BY = "namespace, deployment"


@dataclass(frozen=True)
class LatencyObjective:
    threshold_seconds: float
    percent: float


@dataclass(frozen=True)
class Objectives:
    """A ModelDeployment's SLO: percents such as 99.9; either may be absent."""

    availability: float | None = None
    latency: LatencyObjective | None = None
    min_requests: int = 100


def _budget(percent: float) -> str:
    """The error budget of an objective in percent, e.g. 99.9 -> 0.001."""
    return f"{round(1 - percent / 100, 12):g}"


def le_label(seconds: float) -> str:
    """A bucket bound as prometheus_client writes it in `le` (Python's repr of the float:
    0.25 -> "0.25", 1 -> "1.0"), which the SLI's matcher must equal."""
    return repr(float(seconds))


def _sum(expr: str, window: str) -> str:
    return f"sum by ({BY}) (rate({expr}[{window}]))"


def recording_rules(namespace: str, deployment: str, slo: Objectives) -> list[Rule]:
    """The SLIs' error ratios and the request counts over every window."""
    md = {"namespace": namespace, "deployment": deployment}
    sel = selector(**md)
    requests = names.counter(names.REQUESTS)
    rules: list[Rule] = []
    for w in LONG_WINDOWS:
        rules.append(
            {
                "record": names.slo_series(names.SLO_REQUESTS, w),
                "expr": f"sum by ({BY}) (increase({requests}{sel}[{w}]))",
            }
        )
    if slo.availability is not None:
        errors = f"{requests}{selector(SERVER_ERRORS, **md)}"
        for w in WINDOWS:
            total = _sum(f"{requests}{sel}", w)
            rules.append(
                {
                    "record": names.slo_series(names.SLO_AVAILABILITY_ERROR_RATIO, w),
                    # No 5xx series yet is an error ratio of 0, not "no data".
                    "expr": f"({_sum(errors, w)} or 0 * {total}) / {total}",
                }
            )
    if slo.latency is not None:
        le = le_label(slo.latency.threshold_seconds)
        bound = selector(f'le="{le}"', **md)
        fast = f"{names.buckets(names.REQUEST_DURATION)}{bound}"
        count = f"{names.count(names.REQUEST_DURATION)}{sel}"
        for w in WINDOWS:
            rules.append(
                {
                    "record": names.slo_series(names.SLO_LATENCY_ERROR_RATIO, w),
                    "expr": f"1 - {_sum(fast, w)} / {_sum(count, w)}",
                }
            )
    return rules


def _burning(ratio: str, sel: str, budget: str, rates: tuple[BurnRate, ...], guard: int) -> str:
    parts = []
    for r in rates:
        limit = f"({r.factor:g} * {budget})"
        parts.append(
            f"({names.slo_series(ratio, r.long)}{sel} > {limit}"
            f" and {names.slo_series(ratio, r.short)}{sel} > {limit}"
            f" and {names.slo_series(names.SLO_REQUESTS, r.long)}{sel} >= {guard})"
        )
    return " or ".join(parts)


def burn_rate_alerts(namespace: str, deployment: str, slo: Objectives, runbooks: str) -> list[Rule]:
    sel = selector(namespace=namespace, deployment=deployment)
    where = f"{namespace}/{deployment}"
    slis: list[tuple[str, str, float, str]] = []
    if slo.availability is not None:
        slis.append(
            (
                "Availability",
                names.SLO_AVAILABILITY_ERROR_RATIO,
                slo.availability,
                f"{slo.availability:g}% of requests answered without a 5xx",
            )
        )
    if slo.latency is not None:
        ms = slo.latency.threshold_seconds * 1000
        slis.append(
            (
                "Latency",
                names.SLO_LATENCY_ERROR_RATIO,
                slo.latency.percent,
                f"{slo.latency.percent:g}% of requests answered within {ms:g} ms",
            )
        )
    rules: list[Rule] = []
    for sli, ratio, percent, objective in slis:
        budget = _budget(percent)
        for kind, rates, severity, hold in (
            ("Page", PAGE, "critical", "2m"),
            ("Ticket", TICKET, "warning", "15m"),
        ):
            spent = " or ".join(f"{r.factor:g}x over {r.long}" for r in rates)
            rules.append(
                alert(
                    f"MaestroModel{sli}BudgetBurn{kind}",
                    _burning(ratio, sel, budget, rates, slo.min_requests),
                    hold=hold,
                    severity=severity,
                    summary=f"{where} burns its {sli.lower()} error budget",
                    description=(
                        f"{where} is burning the error budget of its SLO ({objective}) at"
                        f" {spent} the sustainable rate; the error ratio over the long window"
                        " is {{ $value | humanizePercentage }}."
                    ),
                    runbooks=runbooks,
                    labels={"deployment": deployment, "slo": sli.lower()},
                )
            )
    return rules


def slo_group(namespace: str, deployment: str, slo: Objectives, runbooks: str) -> Group:
    """The rule group of one ModelDeployment's SLO."""
    return {
        "name": f"maestro-slo.{namespace}.{deployment}",
        "rules": [
            *recording_rules(namespace, deployment, slo),
            *burn_rate_alerts(namespace, deployment, slo, runbooks),
        ],
    }
