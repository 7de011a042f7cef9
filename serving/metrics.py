"""Prometheus metrics of the model server, named and labelled by maestro.monitoring.metric_names
(which the canary analysis and the alert rules query). Every metric carries deployment,
revision, model and model_version; children are bound once per model, so a request costs
a dict lookup and two observations."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

from maestro.monitoring import metric_names

LABELS = metric_names.LABELS
DURATION_BUCKETS = metric_names.REQUEST_DURATION_BUCKETS
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
SHADOW_DELTA_BUCKETS = (
    -1.0,
    -0.1,
    -0.01,
    -0.001,
    0.0,
    0.001,
    0.01,
    0.1,
    1.0,
)


class ServingMetrics:
    """The metric families, registered in one registry (not the process-wide default, so
    tests and several apps in one process do not collide)."""

    def __init__(self, registry: CollectorRegistry, *, deployment: str, revision: str) -> None:
        self.registry = registry
        self.deployment = deployment
        self.revision = revision
        self.requests = Counter(
            metric_names.REQUESTS,
            "Prediction requests by HTTP status code and protocol.",
            [*LABELS, metric_names.LABEL_CODE, metric_names.LABEL_PROTOCOL],
            registry=registry,
        )
        self.duration = Histogram(
            metric_names.REQUEST_DURATION,
            "Prediction request latency, from the first byte read to the response.",
            LABELS,
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            metric_names.BATCH_SIZE,
            "Requests merged into one model predict.",
            LABELS,
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.info = Gauge(
            metric_names.MODEL_INFO, "Models served (always 1).", LABELS, registry=registry
        )
        self.load_seconds = Gauge(
            metric_names.MODEL_LOAD_SECONDS,
            "Time to resolve, download, load and warm up the model.",
            LABELS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            metric_names.QUEUE_DEPTH,
            "Requests waiting for the model's inference thread (read at scrape time).",
            LABELS,
            registry=registry,
        )
        self.queue_capacity = Gauge(
            metric_names.QUEUE_CAPACITY,
            "Requests that may wait for the model before the server answers 503 (--max-queue).",
            LABELS,
            registry=registry,
        )
        self.shadow_requests = Counter(
            metric_names.SHADOW_REQUESTS,
            "Requests mirrored to the shadow model and answered by it.",
            LABELS,
            registry=registry,
        )
        self.shadow_agreements = Counter(
            metric_names.SHADOW_AGREEMENTS,
            "Mirrored requests where the shadow's answer agreed with the served one.",
            LABELS,
            registry=registry,
        )
        self.shadow_delta = Histogram(
            metric_names.SHADOW_LATENCY_DELTA,
            "Shadow model latency minus served model latency, per mirrored request.",
            LABELS,
            buckets=SHADOW_DELTA_BUCKETS,
            registry=registry,
        )
        self.feedback = Counter(
            metric_names.FEEDBACK,
            "Outcomes received on /feedback.",
            LABELS,
            registry=registry,
        )
        self.outcome = Summary(
            metric_names.FEEDBACK_OUTCOME,
            "Numeric outcomes received on /feedback (true = 1, false = 0): _sum / _count is"
            " the conversion rate or mean outcome.",
            LABELS,
            registry=registry,
        )
        self.secret_reloads = Counter(
            metric_names.SECRET_RELOADS,
            "Times the value of a secret file (--secret-file ENV=PATH) changed while serving,"
            " by environment variable: a rotated secret reaching the process.",
            ["deployment", "revision", metric_names.LABEL_ENV],
            registry=registry,
        )

    def secret_reloads_of(self, env: str) -> Counter:
        """The reload counter of one secret's variable (at 0 until its first change)."""
        return self.secret_reloads.labels(self.deployment, self.revision, env)

    def for_model(self, model: str, version: str) -> ModelMetrics:
        values = (self.deployment, self.revision, model, version)
        return ModelMetrics(self, values)


class ModelMetrics:
    """The children of one model's label values, made on first use (so the label set of
    requests for unknown models only ever holds request counts)."""

    def __init__(self, families: ServingMetrics, values: tuple[str, str, str, str]) -> None:
        self.families = families
        self.values = values
        self._requests: dict[tuple[int, str], Counter] = {}

    @cached_property
    def duration(self) -> Histogram:
        return self.families.duration.labels(*self.values)

    @cached_property
    def batch_size(self) -> Histogram:
        return self.families.batch_size.labels(*self.values)

    @cached_property
    def shadow_requests(self) -> Counter:
        return self.families.shadow_requests.labels(*self.values)

    @cached_property
    def shadow_agreements(self) -> Counter:
        return self.families.shadow_agreements.labels(*self.values)

    @cached_property
    def shadow_delta(self) -> Histogram:
        return self.families.shadow_delta.labels(*self.values)

    @cached_property
    def feedback(self) -> Counter:
        return self.families.feedback.labels(*self.values)

    @cached_property
    def outcome(self) -> Summary:
        return self.families.outcome.labels(*self.values)

    def request(self, code: int, protocol: str, seconds: float) -> None:
        counter = self._requests.get((code, protocol))
        if counter is None:
            counter = self.families.requests.labels(*self.values, str(code), protocol)
            self._requests[(code, protocol)] = counter
        counter.inc()
        self.duration.observe(seconds)

    def queue(self, depth: Callable[[], int], capacity: int) -> None:
        """Export the model's queue: `depth` is read at every scrape, so the gauge costs a
        request nothing."""
        self.families.queue_depth.labels(*self.values).set_function(depth)
        self.families.queue_capacity.labels(*self.values).set(capacity)

    def loaded(self, seconds: float) -> None:
        self.families.info.labels(*self.values).set(1)
        self.families.load_seconds.labels(*self.values).set(seconds)
        # Present from the start (at 0), so rate() and ratios see the series from the first
        # scrape on, not only after the first event.
        # The shadow's latency histogram too: created at its first observation, a burst of
        # mirrored requests within one scrape interval never showed in rate() (p95 delta
        # "no data" in the shadow test on a loaded machine).
        for child in (
            self.duration,
            self.batch_size,
            self.shadow_requests,
            self.shadow_agreements,
            self.shadow_delta,
        ):
            _ = child


def unknown_model(metrics: ServingMetrics) -> ModelMetrics:
    """Where requests for a model that is not served are counted (a fixed label value, so a
    client cannot grow the label set)."""
    return metrics.for_model("", "")
