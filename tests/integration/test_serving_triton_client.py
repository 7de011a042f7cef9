"""A real `maestro serve` on a free port, serving a local MLflow model whose signature takes
FP64, FP32, INT64 and string columns, driven by NVIDIA's own HTTP client (tritonclient): the
Open Inference Protocol in its binary tensor extension (the client's default) and in JSON."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
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
    model: Any  # the fitted pipeline, to compare predictions with


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
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAESTRO_", "AWS_"))}
    env.update(MAESTRO_DEPLOYMENT=MODEL, MAESTRO_REVISION="v1")
    log = tmp / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(REPO / ".venv" / "bin" / "maestro"), "serve", "--host", "127.0.0.1",
             "--port", str(port), "--model-uri", model_dir.as_uri(), "--model-name", MODEL],
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
        yield Served(url, model)
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
