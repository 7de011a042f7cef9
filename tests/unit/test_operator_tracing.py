"""Tracing of the operator: a span per reconcile made by the work queue for every kind, the
trace id on log lines, the W3C context rendered into the pods a reconcile creates, and the
renderers keeping each revision's context so a later reconcile rolls nothing out."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from maestro.monitoring.tracing import (
    current_traceparent,
    otlp_tracer_provider,
    parent_context,
    shutdown_tracing,
)
from maestro.operators.api.modeldeployment import ModelDeploymentSpec
from maestro.operators.core.kube import manifest_hash
from maestro.operators.core.objects import TRACEPARENT_ANNOTATION, template_traceparent
from maestro.operators.core.settings import OperatorConfig
from maestro.operators.core.tracing import TraceIdFilter, reconcile_tracer
from maestro.operators.core.workqueue import WorkQueue
from maestro.operators.modeldeployment.render import ServingSettings, TraceContexts, render
from tests.modeldeployment_render_cases import IDS, PLANS, SETTINGS

pytestmark = pytest.mark.unit

OLD = "00-11111111111111111111111111111111-2222222222222222-01"
NEW = "00-33333333333333333333333333333333-4444444444444444-01"


@pytest.fixture
def spans() -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider.get_tracer("test"), exporter
    provider.shutdown()


class Step:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.traceparent: str | None = None

    def run(self) -> None:
        self.traceparent = current_traceparent()
        if self.fail:
            raise RuntimeError("boom")

    def report_error(self, err: Exception) -> None:
        pass


def only_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    exporter.clear()
    return span


@pytest.mark.parametrize(
    ("obj", "fail", "result"),
    [
        ({"metadata": {"name": "a", "generation": 3}}, False, "ok"),
        ({"metadata": {"name": "a", "generation": 3}}, True, "error"),
        (None, False, "gone"),
        ({"metadata": {"name": "a", "deletionTimestamp": "now"}}, False, "gone"),
    ],
    ids=["ok", "error", "absent", "deleting"],
)
def test_each_reconcile_is_one_span_with_what_and_how_it_went(
    spans: tuple[trace.Tracer, InMemorySpanExporter],
    obj: dict[str, Any] | None,
    fail: bool,
    result: str,
) -> None:
    tracer, exporter = spans
    queue = WorkQueue("ModelDeployment", lambda ns, n: None, tracer=tracer)
    step = Step(fail)
    queue.process("ns", "a", lambda: obj, lambda o: step)
    span = only_span(exporter)
    assert span.name == "reconcile ModelDeployment"
    attributes = dict(span.attributes or {})
    assert attributes["maestro.kind"] == "ModelDeployment"
    assert attributes["k8s.namespace.name"] == "ns"
    assert attributes["maestro.name"] == "a"
    assert attributes["maestro.result"] == result
    if result == "gone":
        assert step.traceparent is None  # the step never ran
        return
    assert attributes["maestro.generation"] == 3
    # The step runs inside the span: what it renders carries the span's context.
    assert span.context is not None
    assert step.traceparent is not None
    assert step.traceparent.split("-")[1:3] == [
        f"{span.context.trace_id:032x}",
        f"{span.context.span_id:016x}",
    ]
    assert span.status.is_ok is (not fail)
    assert [e.name for e in span.events] == (["exception"] if fail else [])


def test_a_recheck_scheduled_by_a_reconcile_starts_its_own_trace_linked_to_it(
    spans: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = spans
    queue = WorkQueue("TrainingRun", lambda ns, n: None, tracer=tracer)
    obj = {"metadata": {"name": "a", "generation": 1}}
    # The queue runs a re-check in the context copied where it was scheduled: inside the
    # span of the reconcile that scheduled it.
    with tracer.start_as_current_span("reconcile TrainingRun") as scheduling:
        queue.process("ns", "a", lambda: obj, lambda o: Step())
    recheck = exporter.get_finished_spans()[0]
    assert recheck.parent is None
    assert recheck.context is not None
    assert recheck.context.trace_id != scheduling.get_span_context().trace_id
    assert [link.context for link in recheck.links] == [scheduling.get_span_context()]


def test_tracing_off_makes_no_span_and_no_context() -> None:
    assert reconcile_tracer(trace.NoOpTracerProvider()) is None
    step = Step()
    WorkQueue("DriftCheck", lambda ns, n: None).process(
        "ns", "a", lambda: {"metadata": {"name": "a"}}, lambda o: step
    )
    assert step.traceparent is None


def test_the_endpoint_setting_turns_export_on() -> None:
    assert isinstance(otlp_tracer_provider(None, "x"), trace.NoOpTracerProvider)
    provider = otlp_tracer_provider("http://127.0.0.1:4318/", "maestro-operator")
    assert isinstance(provider, TracerProvider)
    assert provider.resource.attributes["service.name"] == "maestro-operator"
    shutdown_tracing(provider)
    config = OperatorConfig.model_validate({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://j:4318"})
    assert config.otlp_endpoint == "http://j:4318"
    assert OperatorConfig().otlp_endpoint is None


@pytest.mark.parametrize("value", [None, "", "garbage", "00-0-0-01"])
def test_a_missing_or_malformed_traceparent_names_no_parent(value: str | None) -> None:
    assert parent_context(value) is None


def test_log_lines_inside_a_span_carry_its_trace_id(
    spans: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    tracer, _ = spans
    text, structured = TraceIdFilter(text=True), TraceIdFilter(text=False)
    outside = logging.makeLogRecord({"msg": "idle %s", "args": ("now",)})
    assert text.filter(outside) and outside.getMessage() == "idle now"
    with tracer.start_as_current_span("reconcile") as span:
        ids = f"{span.get_span_context().trace_id:032x}"
        line = logging.makeLogRecord({"msg": "[ns/a] %s", "args": ("Available",)})
        assert text.filter(line)
        assert line.getMessage() == f"[ns/a] Available trace_id={ids}"
        assert text.filter(line) and line.getMessage().count("trace_id=") == 1  # once only
        record = logging.makeLogRecord({"msg": "x"})
        assert structured.filter(record)
        assert record.getMessage() == "x" and record.trace_id == ids


# --- pods continue the reconcile's trace, and keep it ------------------------------------------


def deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}


def test_a_revision_keeps_the_context_of_the_reconcile_that_created_it() -> None:
    traces = TraceContexts(live={"v3": OLD, "v2": None}, current=NEW)
    assert traces.of("v3") == OLD  # live: kept
    assert traces.of("v2") is None  # live, created untraced: stays so
    assert traces.of("v4") == NEW  # created now: this reconcile's
    live = [
        {"kind": "Deployment", "metadata": {"labels": {"mlops.maestro.dev/revision": "v3"}}},
        {"kind": "Service", "metadata": {"labels": {"mlops.maestro.dev/revision": "v9"}}},
    ]
    live[0]["spec"] = {"template": {"metadata": {"annotations": {TRACEPARENT_ANNOTATION: OLD}}}}
    assert TraceContexts.gather(live, NEW) == TraceContexts(live={"v3": OLD}, current=NEW)


def test_pods_get_the_context_and_the_collector_and_later_reconciles_change_nothing() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": {"uri": "models:/iris/4"}})
    settings = ServingSettings(**{**SETTINGS.__dict__, "otlp_endpoint": "http://otel:4318"})
    plan = PLANS["canary"]  # v3 runs already, v4 is new
    first = render(IDS, spec, plan, settings, traces=TraceContexts({"v3": None}, OLD))
    made = deployments(first)
    new_pod = made["iris-v4"]["spec"]["template"]
    env = {e["name"]: e.get("value") for e in new_pod["spec"]["containers"][0]["env"]}
    assert env["TRACEPARENT"] == OLD
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel:4318"
    assert template_traceparent(made["iris-v4"]) == OLD
    # The revision that ran before keeps its untraced template.
    assert template_traceparent(made["iris-v3"]) is None
    assert "TRACEPARENT" not in str(made["iris-v3"]["spec"]["template"]["spec"])

    # The next reconcile, in a trace of its own, reads the contexts back from what it
    # applied: the same manifests, so the same hashes, so nothing is applied again.
    again = render(IDS, spec, plan, settings, traces=TraceContexts.gather(first, NEW))
    assert [manifest_hash(o) for o in again] == [manifest_hash(o) for o in first]


def test_without_tracing_nothing_is_rendered() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": {"uri": "models:/iris/4"}})
    (made,) = deployments(render(IDS, spec, PLANS["steady"], SETTINGS)).values()
    assert "TRACEPARENT" not in str(made) and "OTEL_EXPORTER_OTLP_ENDPOINT" not in str(made)
    assert template_traceparent(made) is None
