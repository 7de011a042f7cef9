"""A real `maestro serve` on free ports, serving a local MLflow model whose signature takes
FP64, FP32, INT64 and string columns, driven by NVIDIA's own clients (tritonclient): over
HTTP the Open Inference Protocol in its binary tensor extension (the client's default) and
in JSON; over gRPC its GRPCInferenceService, raw tensor contents (the client's way)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from maestro.localplatform.clusterconfig import REPO
from maestro.localplatform.wait import eventually

pytestmark = pytest.mark.services

MODEL = "mixed"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(size=rows),
            "b": rng.normal(size=rows).astype(np.float32),
            "c": rng.integers(0, 5, size=rows).astype(np.int64),
            "s": rng.choice(["red", "green", "blue"], size=rows).astype(object),
        }
    )


@dataclass(frozen=True)
class Served:
    url: str
    grpc_url: str
    model: Any  # the fitted pipeline, to compare predictions with
    log: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X = frame(300, seed=1)
    y = pd.Series(((X["a"] + X["c"] / 2 + (X["s"] == "red")) > 1).astype(np.int64), name="label")
    model = make_pipeline(
        ColumnTransformer(
            [("s", OneHotEncoder(handle_unknown="ignore"), ["s"])], remainder="passthrough"
        ),
        LogisticRegression(max_iter=500),
    ).fit(X, y)
    tmp = tmp_path_factory.mktemp("triton")
    model_dir = tmp / "model"
    mlflow.sklearn.save_model(
        model, str(model_dir), signature=infer_signature(X, y), input_example=X.head(3)
    )
    port, grpc_port = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAESTRO_", "AWS_"))}
    env.update(MAESTRO_DEPLOYMENT=MODEL, MAESTRO_REVISION="v1")
    log = tmp / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "maestro"), "serve", "--host", "127.0.0.1",
             "--port", str(port), "--grpc-port", str(grpc_port), "--model-uri",
             model_dir.as_uri(), "--model-name", MODEL],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                return httpx.get(f"http://{url}/v2/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(ready, timeout=120, what="maestro serve ready")
        yield Served(url, f"127.0.0.1:{grpc_port}", model, log)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def inputs(X: pd.DataFrame, binary: bool) -> list[Any]:
    import tritonclient.http as http

    tensors = []
    for name, datatype, dtype in [
        ("a", "FP64", np.float64),
        ("b", "FP32", np.float32),
        ("c", "INT64", np.int64),
        ("s", "BYTES", object),
    ]:
        values = X[name].to_numpy().astype(dtype).reshape(-1, 1)
        tensor = http.InferInput(name, list(values.shape), datatype)
        tensor.set_data_from_numpy(values, binary_data=binary)
        tensors.append(tensor)
    return tensors


def test_live_ready_and_metadata(served: Served) -> None:
    import tritonclient.http as http

    client = http.InferenceServerClient(served.url)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL)
    meta = client.get_model_metadata(MODEL)
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("a", "FP64"),
        ("b", "FP32"),
        ("c", "INT64"),
        ("s", "BYTES"),
    ]
    assert meta["outputs"] == [{"name": "label", "datatype": "INT64", "shape": [-1]}]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_equals_the_models_own_predict(served: Served, binary: bool) -> None:
    import tritonclient.http as http

    client = http.InferenceServerClient(served.url)
    X = frame(40, seed=2)
    outputs = None if binary else [http.InferRequestedOutput("label", binary_data=False)]
    result = client.infer(MODEL, inputs(X, binary), outputs=outputs, request_id="r1")
    response = result.get_response()
    assert response["id"] == "r1"
    assert ("parameters" in response["outputs"][0]) is binary  # binary_data_size
    predicted = result.as_numpy("label")
    assert predicted is not None
    np.testing.assert_array_equal(predicted, served.model.predict(X))


def test_binary_inputs_with_json_outputs_and_the_reverse(served: Served) -> None:
    import tritonclient.http as http

    client = http.InferenceServerClient(served.url)
    X = frame(7, seed=3)
    expected = served.model.predict(X)
    json_out = [http.InferRequestedOutput("label", binary_data=False)]
    binary_out = [http.InferRequestedOutput("label", binary_data=True)]
    for tensors, outputs in [(inputs(X, True), json_out), (inputs(X, False), binary_out)]:
        got = client.infer(MODEL, tensors, outputs=outputs).as_numpy("label")
        np.testing.assert_array_equal(got, expected)


def test_a_malformed_binary_body_gets_400_naming_the_tensor_and_the_server_keeps_serving(
    served: Served,
) -> None:
    header = (
        b'{"inputs":[{"name":"a","shape":[2,1],"datatype":"FP64",'
        b'"parameters":{"binary_data_size":16}}]}'
    )
    infer = f"http://{served.url}/v2/models/{MODEL}/infer"
    short = np.array([1.0]).tobytes()
    rsp = httpx.post(
        infer,
        content=header + short,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert rsp.status_code == 400 and "inputs[0] ('a')" in rsp.json()["error"], rsp.text
    rsp = httpx.post(
        infer,
        content=header + np.array([1.0, 2.0, 3.0]).tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert rsp.status_code == 400 and "sum to 16" in rsp.json()["error"], rsp.text
    rsp = httpx.post(
        infer, content=header, headers={"Inference-Header-Content-Length": str(len(header) + 9)}
    )
    assert rsp.status_code == 400 and "outside the body" in rsp.json()["error"], rsp.text
    bad_size = header.replace(b'"shape":[2,1]', b'"shape":[3,1]')
    rsp = httpx.post(
        infer,
        content=bad_size + np.array([1.0, 2.0]).tobytes(),
        headers={"Inference-Header-Content-Length": str(len(bad_size))},
    )
    assert rsp.status_code == 400 and "inputs[0] ('a')" in rsp.json()["error"], rsp.text
    test_infer_equals_the_models_own_predict(served, binary=True)


def test_a_binary_request_for_a_version_it_does_not_serve_is_refused(served: Served) -> None:
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    client = http.InferenceServerClient(served.url)
    with pytest.raises(InferenceServerException, match="serves version"):
        client.infer(MODEL, inputs(frame(2, seed=4), True), model_version="9")


# --- gRPC ---------------------------------------------------------------------------------------


def grpc_inputs(X: pd.DataFrame) -> list[Any]:
    import tritonclient.grpc as grpcclient

    tensors = []
    for name, datatype, dtype in [
        ("a", "FP64", np.float64),
        ("b", "FP32", np.float32),
        ("c", "INT64", np.int64),
        ("s", "BYTES", object),
    ]:
        values = X[name].to_numpy().astype(dtype).reshape(-1, 1)
        tensor = grpcclient.InferInput(name, list(values.shape), datatype)
        tensor.set_data_from_numpy(values)  # raw_input_contents, as the client always sends
        tensors.append(tensor)
    return tensors


def test_grpc_live_ready_and_metadata(served: Served) -> None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(served.grpc_url)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL)
    server = client.get_server_metadata(as_json=True)
    assert server["name"] == "maestro-serving"
    meta = client.get_model_metadata(MODEL, as_json=True)
    assert meta["name"] == MODEL
    # The HTTP metadata, message for message (protobuf's JSON writes int64 as strings).
    http_meta = httpx.get(f"http://{served.url}/v2/models/{MODEL}").json()
    for key in ("inputs", "outputs"):
        as_http = [
            {"name": t["name"], "datatype": t["datatype"], "shape": [int(d) for d in t["shape"]]}
            for t in meta[key]
        ]
        assert as_http == http_meta[key]
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("a", "FP64"),
        ("b", "FP32"),
        ("c", "INT64"),
        ("s", "BYTES"),
    ]
    assert meta["outputs"] == [{"name": "label", "datatype": "INT64", "shape": ["-1"]}]


def test_grpc_infer_equals_the_models_own_predict(served: Served) -> None:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(served.grpc_url)
    X = frame(40, seed=5)
    result = client.infer(MODEL, grpc_inputs(X), request_id="g1")
    response = result.get_response()
    assert response.id == "g1" and response.model_name == MODEL
    assert len(response.raw_output_contents) == 1
    predicted = result.as_numpy("label")
    assert predicted is not None
    np.testing.assert_array_equal(predicted, served.model.predict(X))
    # Asking for the output by name answers the same.
    named = client.infer(MODEL, grpc_inputs(X), outputs=[grpcclient.InferRequestedOutput("label")])
    np.testing.assert_array_equal(named.as_numpy("label"), served.model.predict(X))


def test_grpc_typed_contents_are_read_like_raw_ones(served: Served) -> None:
    """`InferTensorContents` (fp64_contents, bytes_contents...) instead of raw bytes: the
    protocol allows both; tritonclient only sends raw, so the message is built here."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    X = frame(6, seed=6)
    request = service_pb2.ModelInferRequest(model_name=MODEL)
    for name, datatype, field in [
        ("a", "FP64", "fp64_contents"),
        ("b", "FP32", "fp32_contents"),
        ("c", "INT64", "int64_contents"),
    ]:
        tensor = request.inputs.add(name=name, datatype=datatype, shape=[len(X), 1])
        getattr(tensor.contents, field).extend(X[name].tolist())
    tensor = request.inputs.add(name="s", datatype="BYTES", shape=[len(X), 1])
    tensor.contents.bytes_contents.extend(v.encode() for v in X["s"])
    with grpc.insecure_channel(served.grpc_url) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request)
    assert [o.datatype for o in response.outputs] == ["INT64"]
    got = np.frombuffer(response.raw_output_contents[0], dtype="<i8")
    np.testing.assert_array_equal(got, served.model.predict(X))


def test_grpc_malformed_raw_contents_are_invalid_argument_naming_the_tensor(
    served: Served,
) -> None:
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    def request(shape: list[int], *raw: bytes) -> Any:
        message = service_pb2.ModelInferRequest(model_name=MODEL)
        message.inputs.add(name="a", datatype="FP64", shape=shape)
        message.inputs.add(name="c", datatype="INT64", shape=shape)
        message.raw_input_contents.extend(raw)
        return message

    two = np.array([1.0, 2.0]).tobytes()
    ints = np.array([1, 2], dtype="<i8").tobytes()
    cases = [
        # a size that does not fit shape and datatype
        (request([2, 1], two[:8], ints), "inputs[0] ('a'): 8 bytes of raw data"),
        (request([3, 1], two, ints), "inputs[0] ('a')"),
        # fewer raw contents than inputs: the input without one is named
        (request([2, 1], two), "inputs[1] ('c'): no raw_input_contents entry"),
        # more than inputs
        (request([2, 1], two, ints, ints), "raw_input_contents: 3 entries for 2 inputs"),
    ]
    with grpc.insecure_channel(served.grpc_url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for message, expected in cases:
            with pytest.raises(grpc.RpcError) as caught:
                stub.ModelInfer(message)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value
            assert expected in caught.value.details(), caught.value.details()
    # and the server keeps serving, over both protocols, having logged no crash
    test_grpc_infer_equals_the_models_own_predict(served)
    test_infer_equals_the_models_own_predict(served, binary=True)
    assert "Traceback" not in served.log.read_text(errors="replace")


def test_grpc_unknown_model_or_version_is_not_found(served: Served) -> None:
    import grpc
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(served.grpc_url)
    X = frame(2, seed=7)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("nope", grpc_inputs(X))
    assert caught.value.status() == str(grpc.StatusCode.NOT_FOUND), caught.value
    assert "'nope' is not served" in caught.value.message()
    with pytest.raises(InferenceServerException) as caught:
        client.get_model_metadata("nope")
    assert caught.value.status() == str(grpc.StatusCode.NOT_FOUND)
    with pytest.raises(InferenceServerException, match="serves version") as caught:
        client.infer(MODEL, grpc_inputs(X), model_version="9")
    assert caught.value.status() == str(grpc.StatusCode.NOT_FOUND)


def test_grpc_a_request_that_does_not_fit_the_signature_names_the_column(served: Served) -> None:
    import grpc
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(served.grpc_url)
    tensors = grpc_inputs(frame(3, seed=8))[:3]  # no "s"
    with pytest.raises(InferenceServerException) as caught:
        client.infer(MODEL, tensors)
    assert caught.value.status() == str(grpc.StatusCode.INVALID_ARGUMENT)
    assert caught.value.message().startswith("s: missing"), caught.value.message()


def test_grpc_requests_are_counted_with_their_protocol_and_status(served: Served) -> None:
    import tritonclient.grpc as grpcclient

    def count(code: str) -> float:
        text = httpx.get(f"http://{served.url}/metrics").text
        total = 0.0
        labels = ('protocol="grpc"', f'code="{code}"', f'model="{MODEL}"')
        for line in text.splitlines():
            if line.startswith("maestro_requests_total{") and all(x in line for x in labels):
                total += float(line.rsplit(" ", 1)[1])
        return total

    before_ok, before_bad = count("200"), count("400")
    client = grpcclient.InferenceServerClient(served.grpc_url)
    client.infer(MODEL, grpc_inputs(frame(3, seed=9)))
    test_grpc_malformed_raw_contents_are_invalid_argument_naming_the_tensor(served)
    assert count("200") >= before_ok + 1
    assert count("400") >= before_bad + 4
