"""The per-variant figures of a running ABTest, read from Prometheus: the outcome statistics
and expected assignments every pod of the test exports (serving.abtest_router), summed over
pods, and each revision's error rate and p95 latency for the guardrails."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from maestro.monitoring import metric_names
from maestro.operators.abtest.decide import VariantFigures
from maestro.operators.abtest.statistics import ArmFigures
from maestro.operators.api.abtest import ABTestStatus
from maestro.operators.core.abtests import SplitPlan
from maestro.operators.core.prometheus import (
    PrometheusClient,
    PrometheusQueryError,
    PrometheusUnavailable,
    RevisionMetrics,
    RevisionSelector,
)

log = logging.getLogger(__name__)
# Guardrail windows: the test's age, within these bounds (seconds).
WINDOW_FLOOR, WINDOW_CEILING = 30, 3600
LIFETIME_MARGIN = 300


def _by_variant(
    prom: PrometheusClient, family: str, matchers: str, window: str
) -> dict[str, float]:
    """Summed over every pod of the test, those gone too: each pod's series keeps its last
    value, so a restarted pod's figures are not lost with it."""
    samples = prom.query(f"sum by (variant) (last_over_time({family}{{{matchers}}}[{window}]))")
    return {str(s.labels.get("variant", "")): s.value for s in samples}


def read_figures(
    prom: PrometheusClient,
    namespace: str,
    split: SplitPlan,
    md: dict[str, Any],
    status: ABTestStatus,
    now: datetime,
) -> VariantFigures | None:
    """None while Prometheus cannot answer (the test waits and looks again)."""
    matchers = f'namespace="{namespace}",abtest="{split.name}",test_id="{split.test_id}"'
    deployment = md["metadata"]["name"]
    stable = (md.get("status") or {}).get("stableRevision")
    age = (now - status.start_time).total_seconds() if status.start_time else 0
    window = f"{int(min(max(age, WINDOW_FLOOR), WINDOW_CEILING))}s"
    # The whole test, and the minutes before its first look when the split already ran.
    lifetime = f"{int(age) + LIFETIME_MARGIN}s"
    try:
        n = _by_variant(
            prom, metric_names.counter(metric_names.ABTEST_OUTCOMES), matchers, lifetime
        )
        sums = _by_variant(prom, metric_names.ABTEST_OUTCOME_SUM, matchers, lifetime)
        squares = _by_variant(prom, metric_names.ABTEST_OUTCOME_SQUARES, matchers, lifetime)
        expected = _by_variant(
            prom, metric_names.counter(metric_names.ABTEST_EXPECTED), matchers, lifetime
        )
        champion = _revision(prom, deployment, stable, namespace, window)
        challenger = _revision(prom, deployment, split.revision, namespace, window)
    except (PrometheusUnavailable, PrometheusQueryError) as err:
        log.warning("ABTest %s/%s: no figures from Prometheus: %s", namespace, split.name, err)
        return None

    def arm(variant: str) -> ArmFigures:
        return ArmFigures(
            round(n.get(variant, 0.0)), sums.get(variant, 0.0), squares.get(variant, 0.0)
        )

    total = sum(expected.values())
    return VariantFigures(
        champion=arm("champion"),
        challenger=arm("challenger"),
        expected_challenger_share=expected.get("challenger", 0.0) / total if total else None,
        champion_error_rate=champion.error_rate,
        challenger_error_rate=challenger.error_rate,
        champion_p95_ms=champion.latency_p95_ms,
        challenger_p95_ms=challenger.latency_p95_ms,
        challenger_requests=challenger.requests,
    )


def _revision(
    prom: PrometheusClient, deployment: str, revision: str | None, namespace: str, window: str
) -> RevisionMetrics:
    if not revision:
        return RevisionMetrics(None, None, None)
    sel = RevisionSelector(deployment=deployment, revision=revision, namespace=namespace)
    return prom.revision_metrics(sel, window)
