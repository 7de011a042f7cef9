"""The gRPC service in-process: the app (FastAPI TestClient) started with serve_grpc on a
free port and a model built in the test, called through a real gRPC channel. What the
same app does over HTTP it does over gRPC: predictions, request metrics labelled grpc,
spans, bearer tokens, the queue limit (RESOURCE_EXHAUSTED) and loading (UNAVAILABLE)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from maestro.localplatform.wait import eventually
from maestro.serving.app import create_app
from maestro.serving.loader import LoadedModel
from maestro.serving.outputs import OutputSpec
from maestro.serving.proto import grpc_predict_v2_pb2 as pb
from maestro.serving.schema import Column, InputSchema, Rows
from maestro.serving.settings import ServeSettings
from maestro.serving.state import ModelSet

pytestmark = pytest.mark.unit

SERVICE = "/inference.GRPCInferenceService/"
RESPONSES = {
    "ServerLive": pb.ServerLiveResponse,
    "ServerReady": pb.ServerReadyResponse,
    "ModelReady": pb.ModelReadyResponse,
    "ServerMetadata": pb.ServerMetadataResponse,
    "ModelMetadata": pb.ModelMetadataResponse,
    "ModelInfer": pb.ModelInferResponse,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def weighted_sum(rows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return rows @ np.array([2.0, -1.0])


def model(predict: Callable[[Any], Any] = weighted_sum) -> LoadedModel:
    schema = InputSchema(columns=(Column("x", "double"), Column("y", "double")))
    return LoadedModel(
        name="m",
        uri="models:/m/3",
        version="3",
        flavor="sklearn",
        schema=schema,
        predict=predict,
        convention="numpy",
        example=Rows([[1.0, 2.0]], ["x", "y"], "example"),
        outputs=(OutputSpec("predict", "FP64", (-1,)),),
        load_seconds=0.1,
    )


class Grpc:
    """Calls of the service over a real channel, with our own messages."""

    def __init__(self, target: str) -> None:
        self.channel = grpc.insecure_channel(target)

    def call(self, method: str, request: Any, metadata: Any = None, timeout: float = 10) -> Any:
        stub = self.channel.unary_unary(
            SERVICE + method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=RESPONSES[method].FromString,
        )
        return stub(request, metadata=metadata, timeout=timeout)

    def future(self, method: str, request: Any) -> Any:
        stub = self.channel.unary_unary(
            SERVICE + method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=RESPONSES[method].FromString,
        )
        return stub.future(request, timeout=20)


def infer_request(x: list[float], y: list[float], model_name: str = "m") -> Any:
    request = pb.ModelInferRequest(model_name=model_name, id="q")
    for name, values in (("x", x), ("y", y)):
        request.inputs.add(name=name, datatype="FP64", shape=[len(values), 1])
        request.raw_input_contents.append(np.array(values, dtype="<f8").tobytes())
    return request


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[TestClient, Grpc]]]:
    opened: list[tuple[TestClient, Grpc]] = []

    def make(
        loader: Callable[[ServeSettings], ModelSet] | None = None,
        wait: bool = True,
        tracer_provider: TracerProvider | None = None,
        **values: Any,
    ) -> tuple[TestClient, Grpc]:
        port = _free_port()
        settings = ServeSettings(
            model_uri="models:/m/3",
            deployment="d",
            revision="v3",
            host="127.0.0.1",
            grpc_port=port,
            **values,
        )
        app = create_app(
            settings,
            loader=loader or (lambda _: ModelSet([model()], "m")),
            freeze_gc=False,
            serve_grpc=True,
            tracer_provider=tracer_provider,
        )
        client = TestClient(app, raise_server_exceptions=False).__enter__()
        channel = Grpc(f"127.0.0.1:{port}")
        opened.append((client, channel))
        if wait:
            eventually(
                lambda: channel.call("ServerReady", pb.ServerReadyRequest()).ready,
                timeout=10,
                what="ready over gRPC",
            )
        return client, channel

    yield make
    for client, channel in opened:
        channel.channel.close()
        client.__exit__(None, None, None)


def requests_total(client: TestClient) -> dict[tuple[str, str, str], float]:
    found: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name == "maestro_requests_total":
                key = (s.labels["protocol"], s.labels["code"], s.labels["model"])
                found[key] = s.value
    return found


def test_infer_metadata_metrics_and_spans(serve: Callable[..., tuple[TestClient, Grpc]]) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    client, channel = serve(tracer_provider=provider)
    assert channel.call("ServerLive", pb.ServerLiveRequest()).live
    assert channel.call("ModelReady", pb.ModelReadyRequest(name="m", version="3")).ready
    meta = channel.call("ModelMetadata", pb.ModelMetadataRequest(name="m"))
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
        ("x", "FP64", [-1, 1]),
        ("y", "FP64", [-1, 1]),
    ]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [
        ("predict", "FP64", [-1])
    ]
    assert list(meta.versions) == ["3"]

    response, call = channel.channel.unary_unary(
        SERVICE + "ModelInfer",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=pb.ModelInferResponse.FromString,
    ).with_call(infer_request([1.0, 3.0], [2.0, 1.0]), metadata=(("x-request-id", "abc"),))
    assert (response.model_name, response.model_version, response.id) == ("m", "3", "q")
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [
        ("predict", "FP64", [2])
    ]
    np.testing.assert_array_equal(
        np.frombuffer(response.raw_output_contents[0], dtype="<f8"), [0.0, 5.0]
    )
    assert ("x-request-id", "abc") in call.trailing_metadata()
    # the same answer as HTTP's v2 JSON
    http = client.post(
        "/v2/models/m/infer",
        json={
            "inputs": [
                {"name": "x", "shape": [2, 1], "datatype": "FP64", "data": [1.0, 3.0]},
                {"name": "y", "shape": [2, 1], "datatype": "FP64", "data": [2.0, 1.0]},
            ]
        },
    ).json()
    assert http["outputs"][0]["data"] == [0.0, 5.0]

    wrong = pb.ModelInferRequest(model_name="m")
    wrong.inputs.add(name="x", datatype="FP64", shape=[1, 1]).contents.fp64_contents.append(1.0)
    with pytest.raises(grpc.RpcError) as caught:
        channel.call("ModelInfer", wrong)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # one tensor is the whole input: its shape must fit both columns (HTTP says the same)
    assert caught.value.details().startswith("inputs[0]: shape [1, 1] does not fit")
    with pytest.raises(grpc.RpcError) as caught:
        channel.call("ModelInfer", infer_request([1.0], [2.0], model_name="nope"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    counts = requests_total(client)
    assert counts[("grpc", "200", "m")] == 1
    assert counts[("grpc", "422", "m")] == 1
    assert counts[("grpc", "404", "")] == 1  # unknown models under the fixed empty label
    assert counts[("v2", "200", "m")] == 1

    spans = exporter.get_finished_spans()
    (infer,) = [
        s
        for s in spans
        if s.name == "inference.GRPCInferenceService/ModelInfer"
        and (s.attributes or {}).get("maestro.request_id") == "abc"
    ]
    assert infer.attributes is not None
    assert infer.attributes["rpc.system"] == "grpc"
    assert infer.attributes["rpc.grpc.status_code"] == 0
    assert not [s for s in spans if s.name.endswith("/ServerLive")]  # health: not traced
    predicts = [s for s in spans if s.name == "predict"]
    assert any(link.context.span_id == infer.context.span_id for s in predicts for link in s.links)


def test_bearer_tokens_are_checked_like_http(
    tmp_path: Path, serve: Callable[..., tuple[TestClient, Grpc]]
) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-value\n")
    _, channel = serve(auth_token_file=token)
    assert channel.call("ServerLive", pb.ServerLiveRequest()).live  # open, as HTTP health
    request = infer_request([1.0], [2.0])
    with pytest.raises(grpc.RpcError) as caught:
        channel.call("ModelInfer", request)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as caught:
        channel.call("ModelInfer", request, metadata=(("authorization", "Bearer nope"),))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as caught:
        channel.call("ModelMetadata", pb.ModelMetadataRequest(name="m"))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    ok = channel.call("ModelInfer", request, metadata=(("authorization", "Bearer s3cret-value"),))
    assert np.frombuffer(ok.raw_output_contents[0], dtype="<f8").tolist() == [0.0]


def test_a_full_queue_is_resource_exhausted_with_retry_after(
    serve: Callable[..., tuple[TestClient, Grpc]],
) -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow(rows: Any) -> Any:
        entered.set()
        release.wait(10)
        return weighted_sum(rows)

    loaded = ModelSet([model(slow)], "m")
    client, channel = serve(lambda _: loaded, max_queue=1, max_batch_size=1)
    batcher = client.app.state.serving.models["m"]._batcher  # type: ignore[attr-defined]
    try:
        first = channel.future("ModelInfer", infer_request([1.0], [0.0]))
        eventually(entered.is_set, timeout=10, what="the first call in predict")
        queued = channel.future("ModelInfer", infer_request([2.0], [0.0]))
        eventually(lambda: batcher.queued == 1, timeout=10, what="the second call queued")
        with pytest.raises(grpc.RpcError) as caught:
            channel.call("ModelInfer", infer_request([3.0], [0.0]))
    finally:
        release.set()
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "queue is full" in (caught.value.details() or "")
    assert ("retry-after", "1") in (caught.value.trailing_metadata() or ())
    assert np.frombuffer(first.result().raw_output_contents[0], dtype="<f8").tolist() == [2.0]
    assert np.frombuffer(queued.result().raw_output_contents[0], dtype="<f8").tolist() == [4.0]
    assert requests_total(client)[("grpc", "503", "m")] == 1


def test_a_call_whose_deadline_passes_is_not_counted_as_a_server_error(
    serve: Callable[..., tuple[TestClient, Grpc]],
) -> None:
    """A client that gives up (deadline, cancel) is counted as 499, like nginx's client
    closed request: a 500 would feed the error-rate alerts and a canary's gate."""
    release = threading.Event()

    def slow(rows: Any) -> Any:
        release.wait(10)
        return weighted_sum(rows)

    loaded = ModelSet([model(slow)], "m")
    client, channel = serve(lambda _: loaded)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            channel.call("ModelInfer", infer_request([1.0], [0.0]), timeout=0.5)
        # The server learns of the passed deadline on its own clock: the model answers only
        # once it surely has (else the call could finish first, as one served, seen in CI).
        time.sleep(2)
    finally:
        release.set()
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    counted = eventually(
        lambda: {k: v for k, v in requests_total(client).items() if k[0] == "grpc"} or None,
        timeout=10,
        what="the cancelled call counted",
    )
    assert counted == {("grpc", "499", "m"): 1}, counted


def test_while_loading_calls_are_unavailable(serve: Callable[..., tuple[TestClient, Grpc]]) -> None:
    loaded = threading.Event()

    def loader(_: ServeSettings) -> ModelSet:
        loaded.wait(10)
        return ModelSet([model()], "m")

    _, channel = serve(loader, wait=False)
    try:
        eventually(
            lambda: channel.call("ServerLive", pb.ServerLiveRequest()).live,
            timeout=10,
            what="live",
        )
        assert not channel.call("ServerReady", pb.ServerReadyRequest()).ready
        with pytest.raises(grpc.RpcError) as caught:
            channel.call("ModelInfer", infer_request([1.0], [2.0]))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert ("retry-after", "2") in (caught.value.trailing_metadata() or ())
    finally:
        loaded.set()
    eventually(
        lambda: channel.call("ServerReady", pb.ServerReadyRequest()).ready,
        timeout=10,
        what="ready",
    )


def test_the_drain_refuses_new_calls_and_finishes_those_in_flight(
    serve: Callable[..., tuple[TestClient, Grpc]],
) -> None:
    release = threading.Event()
    entered = threading.Event()

    def slow(rows: Any) -> Any:
        entered.set()
        release.wait(10)
        return weighted_sum(rows)

    loaded = ModelSet([model(slow)], "m")
    client, channel = serve(lambda _: loaded, drain_seconds=10)
    try:
        in_flight = channel.future("ModelInfer", infer_request([1.0], [0.0]))
        eventually(entered.is_set, timeout=10, what="the call in predict")
        client.app.state.serving.begin_drain()  # type: ignore[attr-defined]  # as SIGTERM does

        def refused() -> bool:
            try:
                channel.call("ServerLive", pb.ServerLiveRequest(), timeout=1)
            except grpc.RpcError as err:
                # A call that races the shutdown on the open connection may be cancelled
                # or left unanswered; once the client has the server's GOAWAY, every new
                # call is refused at once (UNAVAILABLE).
                if err.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
                    return False
                assert err.code() == grpc.StatusCode.UNAVAILABLE, err
                return True
            return False

        eventually(refused, timeout=10, what="new calls refused")
        assert not in_flight.done()
    finally:
        release.set()
    answer = in_flight.result()
    assert np.frombuffer(answer.raw_output_contents[0], dtype="<f8").tolist() == [2.0]


def test_a_grpc_port_in_use_is_fatal() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        fatal: list[str] = []
        app = create_app(
            ServeSettings(model_uri="models:/m/3", host="127.0.0.1", grpc_port=port),
            loader=lambda _: ModelSet([model()], "m"),
            freeze_gc=False,
            serve_grpc=True,
            on_fatal=fatal.append,
        )
        with TestClient(app, raise_server_exceptions=False):
            eventually(lambda: bool(fatal), timeout=10, what="the fatal error")
    assert fatal[0].startswith(f"cannot listen for gRPC on 127.0.0.1:{port}"), fatal
