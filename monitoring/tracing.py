"""OpenTelemetry tracing shared by the operator and `maestro serve`: the OTLP/HTTP provider
(a no-op one when no endpoint is configured, so an untraced process pays only for no-op
calls), and the W3C trace context carried from a reconcile to the pods it creates as the
`TRACEPARENT` environment variable (the name the OpenTelemetry environment-carrier
specification gives it).

The propagator is W3C trace context explicitly, not OpenTelemetry's global one, which
OTEL_PROPAGATORS could change under a process without it noticing.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT_ENV = "TRACEPARENT"
_TRACEPARENT = "traceparent"
_W3C = TraceContextTextMapPropagator()


def otlp_tracer_provider(
    endpoint: str | None, service_name: str, attributes: Mapping[str, str] | None = None
) -> TracerProvider:
    """An SDK provider exporting in batches over OTLP/HTTP to `endpoint` (the base URL, as
    OTEL_EXPORTER_OTLP_ENDPOINT: /v1/traces is appended); a no-op provider when unset."""
    if not endpoint:
        return trace.NoOpTracerProvider()
    # Imported here: an untraced process never loads the SDK or the exporter.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": service_name, **(attributes or {})})
    provider = SdkTracerProvider(resource=resource)
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def shutdown_tracing(provider: TracerProvider) -> None:
    """Flush pending spans (SDK providers only; the no-op one has nothing to flush)."""
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()


def current_traceparent() -> str | None:
    """The W3C traceparent of the span current in this thread or task; None outside a
    sampled, valid span (tracing off)."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    return carrier.get(_TRACEPARENT)


def parent_context(traceparent: str | None) -> Context | None:
    """The context a TRACEPARENT value names, for a child span; None when it is unset or
    malformed (the span then starts a trace of its own)."""
    if not traceparent:
        return None
    context = _W3C.extract({_TRACEPARENT: traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def trace_ids() -> tuple[str, str] | None:
    """The current span's trace and span ids in hex (as Jaeger shows them), for log lines;
    None outside a span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
