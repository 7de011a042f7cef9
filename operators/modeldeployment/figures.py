"""What a ModelDeployment's rollout asks Prometheus: the canary's figures over its analysis
window and the shadow's comparison, read with a back-off while Prometheus cannot answer.

Missing figures are never a verdict: the rollout holds (decide/canary.py) and its status
says why, and the query is repeated after the back-off, not on every reconcile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from maestro.operators.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from maestro.operators.core.backoff import Backoff
from maestro.operators.core.events import one_line
from maestro.operators.core.prometheus import (
    PrometheusClient,
    PrometheusQueryError,
    PrometheusUnavailable,
    RevisionSelector,
)
from maestro.operators.modeldeployment.decide import canary_query, shadow_query
from maestro.operators.modeldeployment.render import DeploymentIds

NOT_CONFIGURED = "no Prometheus configured (MAESTRO_PROMETHEUS_URL)"


@dataclass
class FiguresRead:
    """The figures read (None: not asked, or not to be had) and why they are missing."""

    canary: Any = None
    shadow: Any = None
    error: str = ""
    retry_at: datetime | None = None


def read_figures(
    prometheus: PrometheusClient | None,
    backoff: Backoff,
    ids: DeploymentIds,
    spec: ModelDeploymentSpec,
    status: ModelDeploymentStatus,
    now: datetime,
    warn: Callable[[str], None],
) -> FiguresRead:
    """The figures the decision needs now; `warn` gets the first failure of an outage
    (an Event), not every retry."""
    read = FiguresRead()
    canary, shadow = canary_query(spec, status, now), shadow_query(spec, status)
    if canary is None and shadow is None:
        return read
    if prometheus is None:
        read.error = NOT_CONFIGURED
        warn(f"{NOT_CONFIGURED}: the rollout waits.")
        return read
    key = (ids.namespace, ids.name)
    waiting = backoff.waiting(key, now)
    if waiting is not None:
        read.error, read.retry_at = waiting.error, waiting.retry_at
        return read

    def selector(revision: str) -> RevisionSelector:
        return RevisionSelector(deployment=ids.name, revision=revision, namespace=ids.namespace)

    try:
        if canary is not None:
            read.canary = prometheus.revision_metrics(selector(canary.revision), canary.window)
        if shadow is not None:
            read.shadow = prometheus.shadow_metrics(selector(shadow.revision), shadow.window)
    except (PrometheusUnavailable, PrometheusQueryError) as err:
        failed = backoff.failed(key, now, one_line(err))
        read.error, read.retry_at = failed.error, failed.retry_at
        if failed.attempt == 1:
            warn(f"{failed.error} (asked again with back-off; the rollout holds meanwhile)")
        return read
    backoff.succeeded(key)
    return read
