"""One span per reconcile, for every kind, made where reconciles are dispatched (the work
queue), and the trace id on the operator's log lines.

The tracer comes from the operator's settings (OTEL_EXPORTER_OTLP_ENDPOINT): unset, it is
OpenTelemetry's no-op tracer, so a reconcile pays for a few no-op calls and nothing is
exported. The span is current while the kind's step runs, so the pods a step renders can
carry its context (maestro.monitoring.tracing.current_traceparent).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, Tracer, TracerProvider

from maestro.monitoring.tracing import otlp_tracer_provider, trace_ids

SERVICE_NAME = "maestro-operator"
TRACER_NAME = "maestro.operator"
# What became of one reconcile: the object was gone or being deleted, its step ran to the
# end, or it raised (and is retried with back-off).
Result = Literal["gone", "ok", "error"]


def operator_tracer_provider(endpoint: str | None) -> TracerProvider:
    return otlp_tracer_provider(endpoint, SERVICE_NAME)


def reconcile_tracer(provider: TracerProvider) -> Tracer | None:
    """The tracer of the reconciles; None when tracing is off, so that a reconcile skips
    even the no-op tracer's context bookkeeping (about 5 µs each)."""
    if isinstance(provider, trace.NoOpTracerProvider):
        return None
    return provider.get_tracer(TRACER_NAME)


@contextmanager
def reconcile_span(tracer: Tracer | None, kind: str, namespace: str, name: str) -> Iterator[Span]:
    """The span of one reconcile, current inside the block; the caller sets the
    generation once it read the object and the result (`set_result`). An exception is
    recorded on the span and goes on. Without a tracer: the invalid span, nothing current."""
    if tracer is None:
        yield trace.INVALID_SPAN
        return
    # Each reconcile is the root of a trace of its own. A re-check runs in the context of
    # the reconcile that scheduled it (the work queue copies it, for Kopf's sake): that one
    # becomes a link, not the parent, or a deployment polled every few seconds would grow
    # one endless trace.
    scheduled_by = trace.get_current_span().get_span_context()
    with tracer.start_as_current_span(
        f"reconcile {kind}",
        context=Context(),
        links=[Link(scheduled_by)] if scheduled_by.is_valid else None,
        attributes={"maestro.kind": kind, "k8s.namespace.name": namespace, "maestro.name": name},
    ) as span:
        yield span


def set_result(
    span: Span, result: Result, generation: int | None = None, error: Exception | None = None
) -> None:
    if not span.is_recording():
        return
    span.set_attribute("maestro.result", result)
    if generation is not None:
        span.set_attribute("maestro.generation", generation)
    if error is not None:
        span.record_exception(error)
        span.set_status(trace.Status(trace.StatusCode.ERROR, str(error)))


class TraceIdFilter(logging.Filter):
    """Puts the current span's trace and span ids on each record (`trace_id`, `span_id`:
    Kopf's JSON format writes them as fields); for text formats, which name no extra
    fields, they are appended to the message. Records outside a span pass unchanged."""

    def __init__(self, *, text: bool) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        ids = trace_ids()
        if ids is None or getattr(record, "trace_id", None) is not None:
            return True
        record.trace_id, record.span_id = ids
        if self.text:
            record.msg = f"{record.getMessage()} trace_id={ids[0]}"
            record.args = None
        return True


def log_trace_ids(logger: logging.Logger, *, text: bool) -> None:
    """Every handler of `logger` (Kopf's, once kopf.configure set it up) marks records
    logged inside a span."""
    for handler in logger.handlers:
        handler.addFilter(TraceIdFilter(text=text))
