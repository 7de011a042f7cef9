"""What every kind's handlers share, built once per operator run (no module globals): the
settings, the clock, the API client created by the startup handler, the registry of the
metrics the operator exports and the provider of its reconcile spans."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.trace import NoOpTracerProvider, TracerProvider
from prometheus_client import CollectorRegistry

from maestro.operators.core.conditions import Clock
from maestro.operators.core.events import emit
from maestro.operators.core.kube import Kube
from maestro.operators.core.operator_metrics import OperatorMetrics
from maestro.operators.core.prometheus import PrometheusClient
from maestro.operators.core.settings import OperatorConfig
from maestro.operators.core.status_writer import EventPoster
from maestro.operators.core.tracing import reconcile_tracer
from maestro.operators.core.workqueue import WorkQueue


@dataclass
class Runtime:
    clock: Clock
    request_timeout: float
    config: OperatorConfig = field(default_factory=OperatorConfig)
    # The kubernetes ApiClient, created by the startup handler.
    api_client: Any = field(default=None)
    # What the operator exports at MAESTRO_METRICS_LISTEN (e.g. DriftCheck results).
    metrics: CollectorRegistry = field(default_factory=CollectorRegistry)
    operator_metrics: OperatorMetrics = field(init=False)
    # Where the span of each reconcile goes (a no-op provider when tracing is off).
    tracer_provider: TracerProvider = field(default_factory=NoOpTracerProvider)
    # How Events are posted: through Kopf in the operator (events.emit).
    post_event: EventPoster = field(default=emit)
    _kube: Kube | None = field(default=None, init=False, repr=False)
    _prometheus: PrometheusClient | None = field(default=None, init=False, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.operator_metrics = OperatorMetrics(self.metrics)

    def queue(self, kind: str, reconcile: Callable[[str, str], None]) -> WorkQueue:
        """A controller's work queue, measured."""
        return WorkQueue(
            kind,
            reconcile,
            metrics=self.operator_metrics,
            tracer=reconcile_tracer(self.tracer_provider),
        )

    @property
    def prometheus(self) -> PrometheusClient | None:
        """The Prometheus the analyses read (canaries, ABTests); None when not configured."""
        url = self.config.prometheus_url
        with self._guard:
            if url and self._prometheus is None:
                self._prometheus = PrometheusClient(url, timeout=self.request_timeout)
            return self._prometheus

    @property
    def kube(self) -> Kube:
        with self._guard:
            if self._kube is None:
                if self.api_client is None:
                    raise RuntimeError("the API client is created by the startup handler")
                self._kube = Kube(
                    self.api_client, self.request_timeout, self.operator_metrics.wrote
                )
            return self._kube
