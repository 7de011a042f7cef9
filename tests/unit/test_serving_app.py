"""The model server app in-process (FastAPI TestClient), with models built in the test: the
protocols, errors, metrics, request ids, feedback, readiness, shadow, ensemble and spans."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from maestro.localplatform.wait import eventually
from maestro.serving.app import create_app
from maestro.serving.ensemble import ensemble_model
from maestro.serving.loader import LoadedModel, Predict
from maestro.serving.schema import Column, InputSchema, Rows
from maestro.serving.settings import ServeSettings
from maestro.serving.state import ModelSet
from maestro.serving.telemetry import JsonFormatter

pytestmark = pytest.mark.unit


@dataclass(frozen=True)
class Data:
    frame: pd.DataFrame
    linear: Pipeline
    tree: DecisionTreeClassifier


@pytest.fixture(scope="module")
def data() -> Data:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X.to_numpy(), y)
    tree = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X.to_numpy(), y)
    return Data(X, linear, tree)


def model(data: Data, name: str, predict: Predict, version: str = "3") -> LoadedModel:
    schema = InputSchema(columns=tuple(Column(str(c), "double") for c in data.frame.columns))
    example = Rows(data.frame.head(1).to_numpy().tolist(), list(schema.names), "example")
    return LoadedModel(
        name=name,
        uri=f"models:/{name}/{version}",
        version=version,
        flavor="sklearn",
        schema=schema,
        predict=predict,
        convention="numpy",
        example=example,
        load_seconds=0.25,
    )


def settings(**values: Any) -> ServeSettings:
    return ServeSettings(model_uri="models:/bc/3", deployment="bc", revision="v3", **values)


@pytest.fixture
def client_for() -> Iterator[Callable[..., TestClient]]:
    opened: list[TestClient] = []

    def make(
        loaded: ModelSet | Callable[[ServeSettings], ModelSet], wait: bool = True, **kwargs: Any
    ) -> TestClient:
        loader = loaded if callable(loaded) else (lambda _: loaded)
        app = create_app(
            kwargs.pop("settings", None) or settings(), loader=loader, freeze_gc=False, **kwargs
        )
        client = TestClient(app, raise_server_exceptions=False).__enter__()
        opened.append(client)
        if wait:
            eventually(
                lambda: client.get("/v2/health/ready").status_code == 200, timeout=10, what="ready"
            )
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    ]


def split(frame: pd.DataFrame) -> dict[str, Any]:
    return {"dataframe_split": json.loads(frame.to_json(orient="split"))}


def test_protocols_answer_the_native_predictions(
    data: Data, client_for: Callable[..., TestClient]
) -> None:
    client = client_for(ModelSet([model(data, "bc", data.linear.predict)], "bc"))
    rows = data.frame.iloc[:25]
    expected = data.linear.predict(rows).tolist()
    assert client.post("/invocations", json=split(rows)).json() == {"predictions": expected}
    records = {"dataframe_records": rows.to_dict(orient="records")}
    assert client.post("/invocations", json=records).json()["predictions"] == expected
    assert client.post("/predict", json={"instances": rows.to_numpy().tolist()}).json() == {
        "predictions": expected
    }
    tensor = {
        "name": "x",
        "shape": list(rows.shape),
        "datatype": "FP64",
        "data": rows.to_numpy().ravel().tolist(),
    }
    v2 = client.post("/v2/models/bc/infer", json={"id": "q1", "inputs": [tensor]}).json()
    assert v2["id"] == "q1" and v2["model_version"] == "3"
    assert v2["outputs"][0]["data"] == expected and v2["outputs"][0]["shape"] == [25]
    per_column = [
        {"name": c, "shape": [len(rows)], "datatype": "FP64", "data": rows[c].tolist()}
        for c in rows.columns
    ]
    assert (
        client.post("/v2/models/bc/infer", json={"inputs": per_column}).json()["outputs"][0]["data"]
        == expected
    )


def test_metadata_reports_the_concrete_version(
    data: Data, client_for: Callable[..., TestClient]
) -> None:
    client = client_for(ModelSet([model(data, "bc", data.linear.predict, version="12")], "bc"))
    meta = client.get("/v2/models/bc").json()
    assert meta["versions"] == ["12"]
    assert meta["parameters"]["model_version"] == "12"
    assert meta["inputs"][0] == {"name": "mean radius", "datatype": "FP64", "shape": [-1, 1]}
    assert client.get("/v2/models/bc/versions/12/ready").status_code == 200
    assert client.get("/v2/models/bc/versions/11").status_code == 404
    assert client.get("/v2").json()["name"] == "maestro-serving"


def test_v2_binary_tensors_in_and_out(data: Data, client_for: Callable[..., TestClient]) -> None:
    client = client_for(ModelSet([model(data, "bc", data.linear.predict)], "bc"))
    rows = data.frame.head(5).to_numpy()
    header = json.dumps(
        {
            "id": "b1",
            "inputs": [
                {
                    "name": "x",
                    "shape": list(rows.shape),
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": rows.nbytes},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    rsp = client.post(
        "/v2/models/bc/infer",
        content=header + rows.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert rsp.status_code == 200, rsp.text
    assert rsp.headers["content-type"] == "application/octet-stream"
    length = int(rsp.headers["inference-header-content-length"])
    head = json.loads(rsp.content[:length])
    (output,) = head["outputs"]
    assert head["id"] == "b1" and output["datatype"] == "INT64" and output["shape"] == [5]
    assert output["parameters"]["binary_data_size"] == 40
    got = np.frombuffer(rsp.content[length:], "<i8")
    assert got.tolist() == data.linear.predict(rows).tolist()
    broken = client.post(
        "/v2/models/bc/infer",
        content=header + rows.tobytes()[:-8],
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert broken.status_code == 400 and "inputs[0] ('x')" in broken.json()["error"]
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]


def test_errors_name_the_field_and_are_counted(
    data: Data, client_for: Callable[..., TestClient]
) -> None:
    def broken(_: np.ndarray) -> Any:
        raise RuntimeError("weights are corrupt")

    client = client_for(
        ModelSet(
            [model(data, "bc", data.linear.predict), model(data, "broken", broken, "4")], "bc"
        ),
        settings=settings(max_body_bytes=4000),
    )
    row = data.frame.iloc[0].to_dict()
    wrong = client.post("/invocations", json={"dataframe_records": [{**row, "mean area": "big"}]})
    assert wrong.status_code == 422
    assert wrong.json()["message"].startswith("mean area: expected double, got string")
    missing = client.post(
        "/invocations",
        json={"dataframe_records": [{k: v for k, v in row.items() if k != "worst area"}]},
    )
    assert missing.status_code == 422 and missing.json()["message"].startswith(
        "worst area: missing"
    )
    shape = client.post("/predict", json={"instances": [[1.0, 2.0]]})
    assert shape.status_code == 422 and "30 columns" in shape.json()["message"]
    assert client.post("/invocations", content=b"{oops").status_code == 400
    assert client.post("/v2/models/nope/infer", json={}).status_code == 404
    big = client.post("/predict", json={"instances": [[0.0] * 30] * 40})
    assert big.status_code == 413
    failed = client.post(
        "/v2/models/broken/infer",
        json={"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": [0.0] * 30}]},
    )
    assert failed.status_code == 500
    assert "RuntimeError: weights are corrupt" in failed.json()["error"]
    assert client.get("/v2/health/live").status_code == 200, (
        "a failing model does not stop the server"
    )

    counts = {
        (s["model"], s["code"], s["protocol"]): v
        for s, v in samples(client.get("/metrics").text, "maestro_requests_total")
    }
    assert counts[("bc", "422", "invocations")] == 2
    assert counts[("bc", "422", "predict")] == 1
    assert counts[("bc", "400", "invocations")] == 1
    assert counts[("bc", "413", "predict")] == 1
    assert counts[("broken", "500", "v2")] == 1
    assert counts[("", "404", "v2")] == 1


def test_metrics_carry_the_contract_labels(
    data: Data, client_for: Callable[..., TestClient]
) -> None:
    client = client_for(ModelSet([model(data, "bc", data.linear.predict)], "bc"))
    for _ in range(3):
        assert (
            client.post(
                "/predict", json={"instances": data.frame.iloc[:2].to_numpy().tolist()}
            ).status_code
            == 200
        )
    client.get("/v2/health/ready")
    text = client.get("/metrics").text
    labels = {"deployment": "bc", "revision": "v3", "model": "bc", "model_version": "3"}
    assert (labels | {"code": "200", "protocol": "predict"}, 3.0) in samples(
        text, "maestro_requests_total"
    )
    assert (labels, 3.0) in samples(text, "maestro_request_duration_seconds_count")
    assert (labels, 3.0) in samples(text, "maestro_batch_size_count")
    assert (labels, 1.0) in samples(text, "maestro_model_info")
    assert (labels, 0.25) in samples(text, "maestro_model_load_seconds")
    buckets = [
        s["le"]
        for s, _ in samples(text, "maestro_request_duration_seconds_bucket")
        if s["model"] == "bc"
    ]
    assert buckets[0] == "0.0005" and "10.0" in buckets
    # Health and metrics requests are not counted.
    assert sum(v for _, v in samples(text, "maestro_requests_total")) == 3


def test_queue_depth_and_capacity_are_exported(
    data: Data, client_for: Callable[..., TestClient]
) -> None:
    """The saturation the alerts watch: requests waiting for a busy model, against the
    queue's bound; one more than the bound is answered 503."""
    release = threading.Event()
    entered = threading.Event()

    def slow(rows: Any) -> Any:
        entered.set()
        release.wait(10)
        return data.linear.predict(rows)

    client = client_for(
        ModelSet([model(data, "bc", slow)], "bc"),
        settings=settings(max_queue=2, max_batch_size=1),
    )
    body = {"instances": data.frame.iloc[:1].to_numpy().tolist()}
    labels = {"deployment": "bc", "revision": "v3", "model": "bc", "model_version": "3"}
    assert (labels, 2.0) in samples(client.get("/metrics").text, "maestro_queue_capacity")
    codes: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: codes.append(client.post("/predict", json=body).status_code)
        )
        for _ in range(3)
    ]
    try:
        threads[0].start()
        assert entered.wait(10)
        for t in threads[1:]:
            t.start()

        def depth() -> float:
            found = samples(client.get("/metrics").text, "maestro_queue_depth")
            return next(v for s, v in found if s == labels)

        eventually(lambda: depth() == 2.0, timeout=10, what="two requests queued")
        assert client.post("/predict", json=body).status_code == 503
    finally:
        release.set()
        for t in threads:
            t.join(10)
    assert sorted(codes) == [200, 200, 200]
    assert (labels, 0.0) in samples(client.get("/metrics").text, "maestro_queue_depth")


def test_request_ids_and_feedback(
    tmp_path: Path, data: Data, client_for: Callable[..., TestClient]
) -> None:
    log = tmp_path / "predictions.jsonl"
    client = client_for(
        ModelSet([model(data, "bc", data.linear.predict)], "bc"),
        settings=settings(prediction_log=log, prediction_log_sample=1.0),
    )
    given = client.post(
        "/predict",
        json={"instances": data.frame.iloc[:1].to_numpy().tolist()},
        headers={"x-request-id": "abc-1"},
    )
    assert given.headers["x-request-id"] == "abc-1"
    made = client.post("/predict", json={"instances": data.frame.iloc[:1].to_numpy().tolist()})
    assert len(made.headers["x-request-id"]) == 32
    assert client.post("/feedback", json={"request_id": "abc-1", "outcome": True}).json()[
        "recorded"
    ]
    assert client.post("/feedback", json={"request_id": "abc-2", "outcome": 0.0}).status_code == 200
    unknown = client.post("/feedback", json={"request_id": "abc-1", "outcome": 1, "label": 1})
    assert unknown.status_code == 422 and unknown.json()["error"].startswith("label: unknown field")
    missing = client.post("/feedback", json={"request_id": "abc-1"})
    assert missing.status_code == 422 and missing.json()["error"].startswith("outcome:")
    text = client.get("/metrics").text
    assert [v for s, v in samples(text, "maestro_feedback_total") if s["model"] == "bc"] == [2.0]
    assert [v for s, v in samples(text, "maestro_feedback_outcome_sum") if s["model"] == "bc"] == [
        1.0
    ]

    def lines() -> list[dict[str, Any]] | None:
        found = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        return found if len(found) == 4 else None

    records = eventually(lines, timeout=10, what="4 prediction log lines")
    kinds = {(r["kind"], r["request_id"]) for r in records}
    assert ("prediction", "abc-1") in kinds and ("feedback", "abc-1") in kinds
    first = next(r for r in records if r["request_id"] == "abc-1" and r["kind"] == "prediction")
    assert first["inputs"][0]["mean radius"] == data.frame.iloc[0]["mean radius"]
    assert first["model_version"] == "3" and first["revision"] == "v3"


def test_ready_only_after_loading(data: Data, client_for: Callable[..., TestClient]) -> None:
    loaded = threading.Event()

    def slow_loader(_: ServeSettings) -> ModelSet:
        assert loaded.wait(10)
        return ModelSet([model(data, "bc", data.linear.predict)], "bc")

    client = client_for(slow_loader, wait=False)
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 503
    early = client.post("/predict", json={"instances": [[0.0] * 30]})
    assert early.status_code == 503 and early.headers["retry-after"] == "2"
    loaded.set()
    eventually(lambda: client.get("/v2/health/ready").status_code == 200, timeout=10, what="ready")
    assert client.get("/v2/models/bc/ready").json() == {"name": "bc", "ready": True}


def test_a_loader_failure_is_fatal(client_for: Callable[..., TestClient]) -> None:
    told: list[str] = []

    def failing(_: ServeSettings) -> ModelSet:
        raise RuntimeError("no such model")

    client = client_for(failing, wait=False, on_fatal=told.append)
    eventually(lambda: told, timeout=10, what="on_fatal called")
    assert told == ["RuntimeError: no such model"]
    assert client.get("/v2/health/ready").status_code == 503


def test_shadow_is_compared_never_returned(
    data: Data, client_for: Callable[..., TestClient]
) -> None:
    rows = data.frame.iloc[:40]
    served, shadow = data.linear.predict(rows), data.tree.predict(rows.to_numpy())
    client = client_for(
        ModelSet(
            [model(data, "bc", data.linear.predict)],
            "bc",
            shadow=model(data, "shadow", data.tree.predict, "4"),
        )
    )
    for i in range(len(rows)):
        answer = client.post("/predict", json={"instances": rows.iloc[[i]].to_numpy().tolist()})
        assert answer.json()["predictions"] == [served[i]]

    def counted() -> list[float] | None:
        text = client.get("/metrics").text
        got = [v for s, v in samples(text, "maestro_shadow_requests_total") if s["model"] == "bc"]
        return got if got == [40.0] else None

    eventually(counted, timeout=10, what="40 shadow requests")
    text = client.get("/metrics").text
    agreements = [
        v for s, v in samples(text, "maestro_shadow_agreements_total") if s["model"] == "bc"
    ]
    assert agreements == [float(np.sum(served == shadow))]
    assert [
        v
        for s, v in samples(text, "maestro_shadow_latency_delta_seconds_count")
        if s["model"] == "bc"
    ] == [40.0]


def test_ensemble_votes(data: Data, client_for: Callable[..., TestClient]) -> None:
    def always(label: int) -> Predict:
        return lambda a: np.full(len(a), label)

    members = [
        model(data, "linear", data.linear.predict, "1"),
        model(data, "ones", always(1), "2"),
        model(data, "zeros", always(0), "3"),
    ]
    loaded = ModelSet([*members, ensemble_model("ensemble", "vote", members)], "ensemble")
    client = client_for(loaded)
    rows = data.frame.iloc[:30]
    answer = client.post("/invocations", json=split(rows)).json()["predictions"]
    # One member says 1, one says 0: the linear model decides every row.
    assert answer == data.linear.predict(rows).tolist()
    assert client.get("/v2/models/ensemble").json()["versions"] == ["1+2+3"]


def test_spans_per_request_and_per_batch(data: Data, client_for: Callable[..., TestClient]) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = client_for(
        ModelSet([model(data, "bc", data.linear.predict)], "bc"), tracer_provider=provider
    )
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    client.post("/predict", json={"instances": [[0.0] * 30]}, headers={"traceparent": parent})
    spans = {s.name: s for s in exporter.get_finished_spans()}
    request, batch = spans["POST /predict"], spans["predict"]
    assert format(request.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert request.attributes is not None and request.attributes["http.response.status_code"] == 200
    assert batch.attributes is not None and batch.attributes["maestro.batch.requests"] == 1
    assert [link.context.span_id for link in batch.links] == [request.context.span_id]


@pytest.mark.parametrize(
    "traceparent", ["00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "", "garbage"]
)
def test_the_load_span_continues_the_traceparent_the_pod_was_given(
    data: Data, client_for: Callable[..., TestClient], traceparent: str
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client = client_for(
        ModelSet([model(data, "bc", data.linear.predict)], "bc"),
        tracer_provider=provider,
        settings=settings(traceparent=traceparent),
    )
    client.post("/predict", json={"instances": [[0.0] * 30]})
    spans = {s.name: s for s in exporter.get_finished_spans()}
    load, request = spans["load models"], spans["POST /predict"]
    assert load.attributes is not None and load.attributes["maestro.model_uris"] == (
        "models:/bc/3",
    )
    if traceparent.startswith("00-"):
        trace_id = "0af7651916cd43dd8448eb211c80319c"  # pragma: allowlist secret
        assert format(load.context.trace_id, "032x") == trace_id
        span_id = "b7ad6b7169203331"  # pragma: allowlist secret
        assert load.parent is not None and format(load.parent.span_id, "016x") == span_id
    else:  # unset or malformed: a trace of its own
        assert load.parent is None
    # A request without a context of its own starts its own trace, not the pod's.
    assert request.context.trace_id != load.context.trace_id
    assert request.parent is None


def test_json_logs() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("test.serving.json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning("model ready", extra={"model": "bc", "load_seconds": 1.5})
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "model ready" and entry["level"] == "warning"
    assert entry["model"] == "bc" and entry["load_seconds"] == 1.5


def test_spans_are_exported_only_when_an_otlp_endpoint_is_set() -> None:
    from opentelemetry import trace

    from maestro.monitoring.tracing import shutdown_tracing
    from maestro.serving.telemetry import tracer_provider

    assert isinstance(tracer_provider({}, {}), trace.NoOpTracerProvider)
    exporting = tracer_provider(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, {"maestro.revision": "v3"}
    )
    assert isinstance(exporting, TracerProvider)
    assert exporting.resource.attributes["service.name"] == "maestro-serving"
    assert exporting.resource.attributes["maestro.revision"] == "v3"
    shutdown_tracing(exporting)
