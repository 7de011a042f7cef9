"""What the operator exports about itself at MAESTRO_METRICS_LISTEN: how long reconciles
take and how often they fail per kind, how many objects wait for a delayed re-check, and
how many writes it sends to the API server per kind and verb."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from maestro.monitoring import metric_names as names


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.reconcile_seconds = Histogram(
            names.OPERATOR_RECONCILE_SECONDS,
            "Time one reconcile of one object took, per kind.",
            ["kind"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.reconcile_errors = Counter(
            names.OPERATOR_RECONCILE_ERRORS,
            "Reconciles that failed and were retried with back-off, per kind.",
            ["kind"],
            registry=registry,
        )
        self.workqueue_depth = Gauge(
            names.OPERATOR_WORKQUEUE_DEPTH,
            "Objects waiting for a delayed re-check or a retry, per kind.",
            ["kind"],
            registry=registry,
        )
        self.api_writes = Counter(
            names.OPERATOR_API_WRITES,
            "Writes the operator sent to the API server, per kind of object and verb.",
            ["kind", "verb"],
            registry=registry,
        )

    def wrote(self, kind: str, verb: str) -> None:
        self.api_writes.labels(kind, verb).inc()
