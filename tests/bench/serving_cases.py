"""What `make bench-serving` sends and expects: the model every server loads, the load
cells, the request body of each protocol, and how to read the predicted labels back."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_NAME = "breast-cancer"


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says what to do."""


@dataclass(frozen=True)
class Cell:
    clients: int
    rows: int

    @property
    def label(self) -> str:
        client = "client" if self.clients == 1 else "clients"
        row = "row" if self.rows == 1 else "rows"
        return f"{self.clients} {client}, {self.rows} {row}"


CELLS = (Cell(1, 1), Cell(16, 1), Cell(64, 1), Cell(16, 100))
FLOOR_CELL = Cell(1, 1)
GOAL_CELL = Cell(64, 1)
# The no-op endpoints answer the same whatever the rows: one client, and the goal's cell.
CEILING_CELLS = (FLOOR_CELL, GOAL_CELL)
JSON = "application/json"
BINARY_HEADER = "Inference-Header-Content-Length"


@dataclass(frozen=True)
class Data:
    columns: list[str]
    rows: list[list[float]]
    expected: list[int]
    accuracy: float


def save_model(model_dir: Path) -> Data:
    """Fit the pipeline and save it as an MLflow model directory every server loads."""
    import mlflow
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=0.2, random_state=0, stratify=target
    )
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    pipeline.fit(x_train, y_train)
    accuracy = float(pipeline.score(x_test, y_test))
    if model_dir.exists():
        shutil.rmtree(model_dir)
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    mlflow.sklearn.save_model(
        pipeline,
        str(model_dir),
        signature=infer_signature(x_train, pipeline.predict(x_train)),
        input_example=x_train.head(2),
        # Given, so MLflow does not spend seconds inferring them; no server here installs them.
        pip_requirements=[f"mlflow=={mlflow.__version__}", f"scikit-learn=={sklearn.__version__}"],
    )
    sample = features.head(100)
    return Data(
        columns=[str(c) for c in features.columns],
        rows=sample.to_numpy(dtype=float).tolist(),
        expected=[int(v) for v in pipeline.predict(sample)],
        accuracy=accuracy,
    )


def body(protocol: str, data: Data, rows: int) -> dict[str, Any]:
    chosen = data.rows[:rows]
    if protocol == "invocations":
        return {"dataframe_split": {"columns": data.columns, "data": chosen}}
    if protocol == "v2":
        # One input per column: what MLServer's MLflow runtime decodes into a DataFrame for a
        # model with a column-based signature (its pandas codec, set from the signature).
        return {
            "inputs": [
                {
                    "name": name,
                    "datatype": "FP64",
                    "shape": [len(chosen), 1],
                    "data": [row[i] for row in chosen],
                }
                for i, name in enumerate(data.columns)
            ]
        }
    raise ValueError(f"protocol: unknown {protocol!r} (invocations or v2)")


def request(protocol: str, data: Data, rows: int) -> tuple[bytes, dict[str, str]]:
    """The HTTP request body and headers of a protocol."""
    if protocol != "v2-binary":
        return json.dumps(body(protocol, data, rows)).encode(), {"Content-Type": JSON}
    return binary_request(data, rows)


def binary_request(data: Data, rows: int) -> tuple[bytes, dict[str, str]]:
    """The v2 body with the binary tensor extension, as Triton's HTTP client sends it by
    default: one FP64 input per column, each column's values as raw little-endian bytes
    after the JSON header, and binary outputs asked for."""
    import numpy as np

    chosen = np.asarray(data.rows[:rows], dtype="<f8")
    raw = [np.ascontiguousarray(chosen[:, i]).tobytes() for i in range(len(data.columns))]
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": name,
                    "shape": [rows, 1],
                    "datatype": "FP64",
                    "parameters": {"binary_data_size": len(raw[i])},
                }
                for i, name in enumerate(data.columns)
            ],
            "parameters": {"binary_data_output": True},
        },
        separators=(",", ":"),
    ).encode()
    headers = {"Content-Type": "application/octet-stream", BINARY_HEADER: str(len(header))}
    return header + b"".join(raw), headers


def grpc_message(data: Data, rows: int) -> bytes:
    """The gRPC ModelInferRequest of the v2 body: one FP64 input per column, its values in
    raw_input_contents (as Triton's client sends them), serialized."""
    import numpy as np

    from maestro.serving.proto import grpc_predict_v2_pb2 as pb

    chosen = np.asarray(data.rows[:rows], dtype="<f8")
    request = pb.ModelInferRequest(model_name=MODEL_NAME)
    for i, name in enumerate(data.columns):
        request.inputs.add(name=name, datatype="FP64", shape=[rows, 1])
        request.raw_input_contents.append(np.ascontiguousarray(chosen[:, i]).tobytes())
    message: bytes = request.SerializeToString()
    return message


def grpc_predictions(message: bytes) -> list[int]:
    """The predicted labels of a serialized ModelInferResponse (its first raw output)."""
    import numpy as np

    from maestro.serving.binary_tensors import NUMERIC
    from maestro.serving.proto import grpc_predict_v2_pb2 as pb

    response = pb.ModelInferResponse.FromString(message)
    dtype = NUMERIC[response.outputs[0].datatype]
    return [int(v) for v in np.frombuffer(response.raw_output_contents[0], dtype=dtype)]


def url_path(protocol: str) -> str:
    """The HTTP path a protocol posts to."""
    return "/invocations" if protocol == "invocations" else f"/v2/models/{MODEL_NAME}/infer"


def path(protocol: str) -> str:
    """The endpoint, as the tables name it."""
    if protocol == "grpc":
        return "gRPC ModelInfer"
    if protocol == "v2-binary":
        return f"{url_path(protocol)}, binary tensors"
    return url_path(protocol)


def predictions(protocol: str, content: bytes, headers: Mapping[str, str]) -> list[int]:
    """The predicted labels of an answer, in whichever shape the protocol returns them."""
    if protocol == "v2-binary":
        return binary_predictions(content, headers)
    answer = json.loads(content)
    values = answer["predictions"] if protocol == "invocations" else answer["outputs"][0]["data"]
    flat: list[int] = []
    for value in values:
        while isinstance(value, list | dict):
            value = next(iter(value.values())) if isinstance(value, dict) else value[0]
        flat.append(int(value))
    return flat


def binary_predictions(content: bytes, headers: Mapping[str, str]) -> list[int]:
    """The first output of a binary v2 answer: its JSON header says the datatype and the
    size of the raw bytes that follow."""
    import numpy as np

    from maestro.serving.binary_tensors import NUMERIC

    length = int(headers[BINARY_HEADER])
    output = json.loads(content[:length])["outputs"][0]
    size = output["parameters"]["binary_data_size"]
    raw = content[length : length + size]
    return [int(v) for v in np.frombuffer(raw, dtype=NUMERIC[output["datatype"]])]
