"""`maestro serve` and `maestro predict-batch` as real processes, against the real MLflow
server: models registered there are served over HTTP from every URI form, and the server's
batching, limits, metrics, shadow, ensemble, prediction log and drain are observed from outside."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.models import infer_signature
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from maestro.localplatform.wait import eventually

pytestmark = pytest.mark.services

MAESTRO = Path(sys.executable).parent / "maestro"
MODELS = Path(__file__).resolve().parents[1] / "serving_models"
PORTS = range(18100, 18200)
CLOUDPICKLE = mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Registered:
    X: pd.DataFrame
    linear: Pipeline
    tree: DecisionTreeClassifier
    stump: DecisionTreeClassifier
    name: str  # v1 = linear (skops, alias champion), v2 = tree (cloudpickle)
    tree_run: str
    linear_dir: Path
    stump_dir: Path
    slow: str
    broken: str


@pytest.fixture(scope="module")
def registered(mlflow_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registered]:
    previous = mlflow.get_tracking_uri() if "MLFLOW_TRACKING_URI" in os.environ else None
    mlflow.set_tracking_uri(mlflow_url)
    with pytest.MonkeyPatch.context() as patch:
        # Keep the repository's uv.lock out of the logged models.
        patch.setenv("MLFLOW_UV_AUTO_DETECT", "false")
        patch.setenv("MLFLOW_LOG_UV_FILES", "false")
        yield register(tmp_path_factory.mktemp("models"))
    mlflow.set_tracking_uri(previous)


def register(folder: Path) -> Registered:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    linear = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    stump = DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y)
    signature = infer_signature(X.head(), linear.predict(X.head()))
    name, slow, broken = unique("serve-bc"), unique("serve-slow"), unique("serve-broken")
    mlflow.set_experiment(unique("serving-tests"))
    common: dict[str, Any] = {"name": "model", "signature": signature, "pip_requirements": []}
    with mlflow.start_run():
        # The trainers' default format (skops), with an input example for the warm-up.
        mlflow.sklearn.log_model(
            linear, registered_model_name=name, input_example=X.head(2), **common
        )
    with mlflow.start_run() as tree_run:
        mlflow.sklearn.log_model(
            tree, registered_model_name=name, serialization_format=CLOUDPICKLE, **common
        )
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            python_model=str(MODELS / "slow_model.py"), registered_model_name=slow, **common
        )
        mlflow.pyfunc.log_model(
            python_model=str(MODELS / "broken_model.py"), registered_model_name=broken, **common
        )
    MlflowClient().set_registered_model_alias(name, "champion", "1")
    for model, directory in ((linear, folder / "linear"), (stump, folder / "stump")):
        mlflow.sklearn.save_model(
            model,
            directory,
            serialization_format=CLOUDPICKLE,
            signature=signature,
            pip_requirements=[],
        )
    return Registered(
        X,
        linear,
        tree,
        stump,
        name,
        tree_run.info.run_id,
        folder / "linear",
        folder / "stump",
        slow,
        broken,
    )


# --- servers -----------------------------------------------------------------------------------


def free_port(taken: set[int]) -> int:
    for port in random.sample(PORTS, len(PORTS)):
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    pytest.fail("no free port in 18100-18199", pytrace=False)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""

    def wait_ready(self, timeout: float = 180) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"maestro serve exited {self.proc.returncode}:\n{self.tail()}", pytrace=False
                )
            try:
                return httpx.get(f"{self.url}/v2/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(ready, timeout=timeout, what=f"{self.url} ready", why=self.tail)

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        found: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(httpx.get(f"{self.url}/metrics").text):
            for sample in family.samples:
                found.setdefault(sample.name, []).append((sample.labels, sample.value))
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(args: list[str], port: int, folder: Path, mlflow_url: str, **env: str) -> Server:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MAESTRO_", "MLFLOW_"))}
    environment.update(MLFLOW_TRACKING_URI=mlflow_url, **env)
    log = folder / f"serve-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(MAESTRO),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--grpc-port",
                "0",
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    return Server(proc, f"http://127.0.0.1:{port}", log)


@dataclass
class Servers:
    main: Server  # every URI form, a broken model, a shadow, the prediction log
    ensemble: Server  # vote of three models
    slow: Server  # a 0.3 s model behind a tiny queue
    prediction_log: Path


@pytest.fixture(scope="module")
def servers(
    registered: Registered, mlflow_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    """The three servers start together (their start-up is mostly imports)."""
    folder = tmp_path_factory.mktemp("serve")
    taken: set[int] = set()
    r = registered
    prediction_log = folder / "predictions.jsonl"
    main = start(
        [
            "--model-uri", f"models:/{r.name}/1",
            "--model", f"champion=models:/{r.name}@champion",
            "--model", f"run=runs:/{r.tree_run}/model",
            "--model", f"local={r.linear_dir.as_uri()}",
            "--model", f"broken=models:/{r.broken}/1",
            "--shadow-model-uri", f"models:/{r.name}/2",
            "--prediction-log", str(prediction_log),
            "--max-body-bytes", "200000",
        ],
        free_port(taken), folder, mlflow_url, MAESTRO_DEPLOYMENT="bc", MAESTRO_REVISION="v1",
    )  # fmt: skip
    ensemble = start(
        [
            "--model", f"linear={r.linear_dir.as_uri()}",
            "--model", f"tree=models:/{r.name}/2",
            "--model", f"stump={r.stump_dir.as_uri()}",
            "--ensemble", "vote",
        ],
        free_port(taken), folder, mlflow_url,
    )  # fmt: skip
    slow = start(
        ["--model-uri", f"models:/{r.slow}/1", "--max-queue", "4", "--max-batch-size", "2"],
        free_port(taken), folder, mlflow_url,
    )  # fmt: skip
    everything = Servers(main, ensemble, slow, prediction_log)
    try:
        for server in (main, ensemble, slow):
            server.wait_ready()
        yield everything
    finally:
        for server in (main, ensemble, slow):
            server.stop()


def split(frame: pd.DataFrame) -> dict[str, Any]:
    return {"dataframe_split": json.loads(frame.to_json(orient="split"))}


def v2_tensor(frame: pd.DataFrame) -> dict[str, Any]:
    values = frame.to_numpy()
    return {
        "name": "x",
        "shape": list(values.shape),
        "datatype": "FP64",
        "data": values.ravel().tolist(),
    }


# --- tests ---------------------------------------------------------------------------------------


def test_every_uri_form_is_served_with_its_concrete_version(
    registered: Registered, servers: Servers
) -> None:
    url = servers.main.url
    expected = {registered.name: ["1"], "champion": ["1"], "run": [], "local": [], "broken": ["1"]}
    for name, versions in expected.items():
        meta = httpx.get(f"{url}/v2/models/{name}").json()
        assert meta["versions"] == versions, name
    rows = registered.X.iloc[100:140]
    linear, tree = registered.linear.predict(rows).tolist(), registered.tree.predict(rows).tolist()
    for name, answer in (
        (registered.name, linear),
        ("champion", linear),
        ("run", tree),
        ("local", linear),
    ):
        response = httpx.post(f"{url}/v2/models/{name}/infer", json={"inputs": [v2_tensor(rows)]})
        assert response.json()["outputs"][0]["data"] == answer, name
    info = servers.main.metrics()["maestro_model_info"]
    labels = {"deployment": "bc", "revision": "v1", "model": registered.name, "model_version": "1"}
    assert (labels, 1.0) in info
    assert ({**labels, "model": "champion"}, 1.0) in info


def test_the_three_protocols_agree_with_the_native_model(
    registered: Registered, servers: Servers
) -> None:
    url = servers.main.url
    rows = registered.X.iloc[:50]
    expected = registered.linear.predict(rows).tolist()
    answers = {
        "dataframe_split": httpx.post(f"{url}/invocations", json=split(rows)).json()["predictions"],
        "dataframe_records": httpx.post(
            f"{url}/invocations", json={"dataframe_records": rows.to_dict(orient="records")}
        ).json()["predictions"],
        "inputs": httpx.post(
            f"{url}/invocations", json={"inputs": rows.to_dict(orient="list")}
        ).json()["predictions"],
        "predict": httpx.post(
            f"{url}/predict", json={"instances": rows.to_numpy().tolist()}
        ).json()["predictions"],
        "v2": httpx.post(
            f"{url}/v2/models/{registered.name}/infer",
            json={"id": "q-7", "inputs": [v2_tensor(rows)]},
        ).json()["outputs"][0]["data"],
    }
    assert answers == dict.fromkeys(answers, expected)
    csv = httpx.post(
        f"{url}/invocations", content=rows.to_csv(index=False), headers={"content-type": "text/csv"}
    )
    assert csv.json()["predictions"] == expected
    v2 = httpx.post(
        f"{url}/v2/models/{registered.name}/infer", json={"id": "q-7", "inputs": [v2_tensor(rows)]}
    ).json()
    assert (v2["id"], v2["model_name"], v2["model_version"]) == ("q-7", registered.name, "1")


def test_bad_requests_get_4xx_naming_the_field_and_a_broken_model_500(
    registered: Registered, servers: Servers
) -> None:
    url = servers.main.url
    row = registered.X.iloc[0].to_dict()
    cases = {
        "wrong type": (
            {"dataframe_records": [{**row, "mean texture": "soft"}]},
            422,
            "mean texture: expected double",
        ),
        "missing column": (
            {"dataframe_split": {"columns": list(row)[1:], "data": [list(row.values())[1:]]}},
            422,
            "mean radius: missing required column",
        ),
        "bad shape": ({"instances": [[1.0, 2.0, 3.0]]}, 422, "does not fit the model's 30 columns"),
        "too large": ({"instances": [[0.0] * 30] * 2000}, 413, "exceeds the limit of 200000 bytes"),
    }
    for case, (body, status, message) in cases.items():
        response = httpx.post(f"{url}/invocations", json=body)
        assert (response.status_code, message in response.json()["message"]) == (status, True), case
    assert httpx.post(f"{url}/invocations", content=b'{"instances": [').status_code == 400
    assert httpx.post(f"{url}/v2/models/missing/infer", json={}).status_code == 404
    broken = httpx.post(
        f"{url}/v2/models/broken/infer", json={"inputs": [v2_tensor(registered.X.iloc[:2])]}
    )
    assert broken.status_code == 500 and "this model version is broken" in broken.json()["error"]
    assert httpx.get(f"{url}/v2/health/ready").status_code == 200
    errors = servers.main.metrics()["maestro_requests_total"]
    assert any(
        s["model"] == "broken" and s["code"] == "500" and s["protocol"] == "v2" for s, _ in errors
    )


def test_concurrent_requests_are_merged_into_batches(
    registered: Registered, servers: Servers
) -> None:
    url, name = servers.main.url, registered.name

    def batches() -> tuple[float, float]:
        found = servers.main.metrics()
        total = next(v for s, v in found["maestro_batch_size_sum"] if s["model"] == name)
        count = next(v for s, v in found["maestro_batch_size_count"] if s["model"] == name)
        return total, count

    before = batches()
    rows = [registered.X.iloc[[i]] for i in range(320)]
    with (
        httpx.Client(limits=httpx.Limits(max_connections=64)) as client,
        ThreadPoolExecutor(64) as pool,
    ):
        answers = list(
            pool.map(lambda r: client.post(f"{url}/invocations", json=split(r)).json(), rows)
        )
    expected = registered.linear.predict(registered.X.iloc[:320]).tolist()
    assert [a["predictions"][0] for a in answers] == expected
    after = batches()
    requests, predicts = after[0] - before[0], after[1] - before[1]
    assert requests == 320
    assert predicts < requests, (
        f"320 concurrent requests took {predicts} predict calls: no batching"
    )


def test_shadow_agreement_and_latency_are_counted(registered: Registered, servers: Servers) -> None:
    name = registered.name

    def shadow() -> tuple[float, float, float]:
        found = servers.main.metrics()

        def value(metric: str) -> float:
            return next(v for s, v in found[metric] if s["model"] == name)

        return (
            value("maestro_shadow_requests_total"),
            value("maestro_shadow_agreements_total"),
            value("maestro_shadow_latency_delta_seconds_count"),
        )

    before = shadow()
    rows = registered.X.iloc[200:260]
    for i in range(len(rows)):
        answer = httpx.post(
            f"{servers.main.url}/predict", json={"instances": rows.iloc[[i]].to_numpy().tolist()}
        )
        assert answer.json()["predictions"] == registered.linear.predict(rows.iloc[[i]]).tolist()
    eventually(lambda: shadow()[0] - before[0] == 60, timeout=20, what="60 mirrored requests")
    after = shadow()
    agreed = int(np.sum(registered.linear.predict(rows) == registered.tree.predict(rows)))
    assert after[1] - before[1] == agreed
    assert after[2] - before[2] == 60


def test_prediction_log_request_ids_and_feedback(registered: Registered, servers: Servers) -> None:
    url = servers.main.url
    request_id = unique("req")
    answer = httpx.post(
        f"{url}/predict",
        json={"instances": registered.X.iloc[:3].to_numpy().tolist()},
        headers={"x-request-id": request_id},
    )
    assert answer.headers["x-request-id"] == request_id
    assert (
        len(httpx.post(f"{url}/predict", json={"instances": [[0.0] * 30]}).headers["x-request-id"])
        == 32
    )
    feedback = httpx.post(f"{url}/feedback", json={"request_id": request_id, "outcome": 1})
    assert feedback.status_code == 200
    bad = httpx.post(f"{url}/feedback", json={"request_id": request_id, "result": 1})
    assert bad.status_code == 422 and bad.json()["error"].startswith("result: unknown field")

    def logged() -> list[dict[str, Any]] | None:
        lines = (
            servers.prediction_log.read_text().splitlines()
            if servers.prediction_log.exists()
            else []
        )
        mine = [r for r in map(json.loads, lines) if r["request_id"] == request_id]
        return mine if len(mine) == 2 else None

    prediction, outcome = eventually(logged, timeout=10, what="prediction and feedback lines")
    assert prediction["kind"] == "prediction" and outcome == {
        **outcome,
        "kind": "feedback",
        "outcome": 1,
    }
    assert prediction["model_version"] == "1" and prediction["deployment"] == "bc"
    assert len(prediction["inputs"]) == 3 and "mean radius" in prediction["inputs"][0]
    assert (
        prediction["outputs"]["predict"]
        == registered.linear.predict(registered.X.iloc[:3]).tolist()
    )
    feedbacks = servers.main.metrics()["maestro_feedback_total"]
    assert any(s["model"] == registered.name and v >= 1 for s, v in feedbacks)


def test_ensemble_vote(registered: Registered, servers: Servers) -> None:
    rows = registered.X
    votes = np.stack(
        [m.predict(rows) for m in (registered.linear, registered.tree, registered.stump)]
    )
    expected = (votes.sum(axis=0) >= 2).astype(int).tolist()
    answer = httpx.post(f"{servers.ensemble.url}/invocations", json=split(rows))
    assert answer.json()["predictions"] == expected
    assert expected != registered.linear.predict(rows).tolist(), (
        "the members must disagree somewhere"
    )
    meta = httpx.get(f"{servers.ensemble.url}/v2/models/ensemble").json()
    assert meta["versions"] == ["+2+"] and meta["platform"] == "mlflow-ensemble-vote"


def test_a_burst_beyond_the_queue_gets_503_with_retry_after(servers: Servers) -> None:
    barrier = threading.Barrier(64)

    def one(_: int) -> httpx.Response:
        barrier.wait()
        return httpx.post(
            f"{servers.slow.url}/predict", json={"instances": [[0.0] * 30]}, timeout=60
        )

    with ThreadPoolExecutor(64) as pool:
        responses = list(pool.map(one, range(64)))
    codes = [r.status_code for r in responses]
    assert set(codes) == {200, 503}, codes
    refused = [r for r in responses if r.status_code == 503]
    assert all(
        r.headers["retry-after"] == "1" and "queue is full" in r.json()["message"] for r in refused
    )
    assert all(r.json() == {"predictions": [1]} for r in responses if r.status_code == 200)


def test_sigterm_drains_in_flight_requests_and_exits_0(servers: Servers) -> None:
    server = servers.slow

    def predicts() -> float:
        # Counted as a batch starts its predict: a request the model is working on.
        return sum(v for _, v in server.metrics().get("maestro_batch_size_count", []))

    before = predicts()
    answers: list[httpx.Response] = []
    threads = [
        threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{server.url}/predict", json={"instances": [[0.0] * 30]}, timeout=60)
            )
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    # Four requests take two batches of 0.3 s; terminate once the first has started.
    eventually(lambda: predicts() > before, timeout=10, what="requests in flight", interval=0.02)
    server.proc.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(30)
    assert [a.status_code for a in answers] == [200] * 4
    assert all(a.json() == {"predictions": [1]} for a in answers)
    assert server.proc.wait(30) == 0
    log = server.tail().splitlines()
    assert log and all(isinstance(json.loads(line), dict) for line in log), "JSON log lines"


def test_predict_batch_appends_predictions_to_parquet(
    registered: Registered, mlflow_url: str, tmp_path: Path
) -> None:
    source, output = tmp_path / "X.parquet", tmp_path / "out" / "Y.parquet"
    registered.X.to_parquet(source)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAESTRO_", "MLFLOW_"))}
    env["MLFLOW_TRACKING_URI"] = mlflow_url
    done = subprocess.run(
        [str(MAESTRO), "predict-batch", "--model-uri", f"models:/{registered.name}/2",
         "--input", str(source), "--output", str(output), "--chunk-size", "100"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert (summary["rows"], summary["chunks"], summary["model_version"]) == (569, 6, "2")
    assert "rows/s" in done.stderr or "569/569" in done.stderr, "a progress bar on stderr"
    result = pd.read_parquet(output)
    assert list(result.columns) == [*registered.X.columns, "prediction"]
    assert result["prediction"].tolist() == registered.tree.predict(registered.X).tolist()
