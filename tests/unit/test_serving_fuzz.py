"""Property-based fuzzing of what `maestro serve` reads from a client (issue 15, hostile
input): whatever the body, headers or tensors, the server answers 2xx or a 4xx that says
what is wrong, never a 5xx, and keeps serving. The app runs in-process (TestClient) with a
model of three double columns; the parsers are also fuzzed directly, where every failure
must be one of the serving errors (each of which maps to its 4xx)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from maestro.localplatform.wait import eventually
from maestro.serving import binary_tensors, grpc_tensors, protocols
from maestro.serving.app import create_app
from maestro.serving.errors import ServingError
from maestro.serving.loader import LoadedModel
from maestro.serving.proto import grpc_predict_v2_pb2 as pb
from maestro.serving.schema import Column, InputSchema, Rows
from maestro.serving.settings import ServeSettings
from maestro.serving.state import ModelSet
from tests.unit.fuzzing import fuzz

pytestmark = pytest.mark.unit

COLUMNS = ("a", "b", "c")
FUZZ = fuzz(150)


def _sum(rows: Any) -> Any:
    """The model: a row's sum, computed as a float so a value that is not a number fails in
    the model (a 500) if validation ever let one through."""
    return np.asarray(rows, dtype=np.float64).sum(axis=1)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    schema = InputSchema(columns=tuple(Column(c, "double") for c in COLUMNS))
    loaded = LoadedModel(
        name="m",
        uri="models:/m/1",
        version="1",
        flavor="sklearn",
        schema=schema,
        predict=_sum,
        convention="numpy",
        example=Rows([[1.0, 2.0, 3.0]], list(COLUMNS), "example"),
        load_seconds=0.0,
    )
    app = create_app(
        ServeSettings(model_uri="models:/m/1", deployment="m", revision="v1"),
        loader=lambda _: ModelSet([loaded], "m"),
        freeze_gc=False,
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        eventually(lambda: c.get("/v2/health/ready").status_code == 200, timeout=10, what="ready")
        yield c


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
DATATYPES = st.sampled_from([*protocols.V2_DATATYPES, "FP8", "", "fp64"])
SHAPES = st.lists(st.integers(min_value=-2, max_value=5), max_size=3) | JSON
TENSOR = st.fixed_dictionaries(
    {"name": st.sampled_from([*COLUMNS, "x", ""]) | JSON},
    optional={
        "shape": SHAPES,
        "datatype": DATATYPES | JSON,
        "data": JSON
        | st.lists(st.floats(allow_nan=False, allow_infinity=False) | st.integers(), max_size=6),
        "parameters": JSON,
    },
)
V2 = st.fixed_dictionaries(
    {"inputs": st.lists(TENSOR, max_size=4) | JSON},
    optional={"id": JSON, "outputs": JSON, "parameters": JSON},
)
MLFLOW = st.sampled_from(protocols.MLFLOW_FORMATS).flatmap(
    lambda key: st.fixed_dictionaries(
        {
            key: JSON
            | st.lists(
                st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=4), max_size=3
            )
        },
        optional={"params": JSON, "columns": JSON},
    )
)
PATHS = st.sampled_from(["/invocations", "/v2/models/m/infer", "/predict", "/feedback"])


def assert_answered(response: Any) -> None:
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        # A 4xx says what is wrong.
        assert response.content, response.status_code


@FUZZ
@given(path=PATHS, body=st.binary(max_size=300))
def test_any_bytes_get_a_4xx_or_an_answer(client: TestClient, path: str, body: bytes) -> None:
    assert_answered(client.post(path, content=body, headers={"content-type": "application/json"}))


@FUZZ
@given(path=PATHS, body=JSON | V2 | MLFLOW)
def test_any_json_gets_a_4xx_or_an_answer(client: TestClient, path: str, body: Any) -> None:
    assert_answered(client.post(path, json=body))


@FUZZ
@given(request=V2)
def test_v2_requests_get_a_4xx_or_an_answer(client: TestClient, request: Any) -> None:
    assert_answered(client.post("/v2/models/m/infer", json=request))


@FUZZ
@given(
    header=V2 | JSON,
    raw=st.binary(max_size=64),
    length=st.integers(min_value=-5, max_value=400)
    | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=5),
)
def test_binary_tensor_requests_get_a_4xx_or_an_answer(
    client: TestClient, header: Any, raw: bytes, length: Any
) -> None:
    head = json.dumps(header).encode()
    declared = str(len(head)) if length == 0 else str(length)
    response = client.post(
        "/v2/models/m/infer",
        content=head + raw,
        headers={
            "content-type": "application/octet-stream",
            "inference-header-content-length": declared,
        },
    )
    assert_answered(response)


@FUZZ
@given(
    inputs=st.lists(
        st.fixed_dictionaries(
            {
                "name": st.sampled_from([*COLUMNS, "x"]),
                "datatype": DATATYPES,
                "shape": st.lists(st.integers(min_value=-1, max_value=4), max_size=3),
                "size": st.integers(min_value=0, max_value=40),
            }
        ),
        max_size=4,
    ),
    raw=st.binary(max_size=160),
)
def test_binary_framing_fails_only_with_serving_errors(inputs: list[Any], raw: bytes) -> None:
    """The parser itself: a header whose tensors claim sizes the body may not have."""
    header = {
        "inputs": [
            {
                "name": t["name"],
                "datatype": t["datatype"],
                "shape": t["shape"],
                "parameters": {"binary_data_size": t["size"]},
            }
            for t in inputs
        ]
    }
    head = json.dumps(header).encode()
    try:
        document = binary_tensors.parse_request(head + raw, str(len(head)))
        protocols.parse_v2(document)
    except ServingError as err:
        assert 400 <= err.status < 500, err


@FUZZ
@given(
    tensors=st.lists(
        st.tuples(
            st.sampled_from([*COLUMNS, "x"]),
            DATATYPES,
            st.lists(st.integers(min_value=-1, max_value=4), max_size=3),
        ),
        max_size=4,
    ),
    raw=st.lists(st.binary(max_size=48), max_size=5),
)
def test_grpc_raw_contents_fail_only_with_serving_errors(
    tensors: list[tuple[str, str, list[int]]], raw: list[bytes]
) -> None:
    request = pb.ModelInferRequest(model_name="m")
    for name, datatype, shape in tensors:
        request.inputs.add(name=name, datatype=datatype, shape=shape)
    request.raw_input_contents.extend(raw)
    try:
        grpc_tensors.request_payload(request)
    except ServingError as err:
        assert 400 <= err.status < 500, err


def test_the_server_still_answers_after_the_fuzzing(client: TestClient) -> None:
    answer = client.post(
        "/invocations", json={"dataframe_split": {"columns": list(COLUMNS), "data": [[1, 2, 3]]}}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": [6.0]}
