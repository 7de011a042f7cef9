"""`maestro serve --secret-file` as a real process, with a pyfunc model saved in the test (no
MLflow server): the value is in the environment when the model loads, and a rewritten file
(a rotated Vault secret) reaches the model's predict as the variable's new value."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow.pyfunc
import pandas as pd
import pytest
from mlflow.models import infer_signature
from prometheus_client.parser import text_string_to_metric_families

from maestro.localplatform.wait import eventually

MAESTRO = Path(sys.executable).with_name("maestro")
ENV = "MAESTRO_TEST_SECRET"
MODEL_CODE = f'''
import hashlib
import os

import mlflow
from mlflow.pyfunc import PythonModel

# Read while loading: the server must have set it before.
AT_LOAD = os.environ["{ENV}"]


def digest(value):
    return int(hashlib.sha256(value.encode()).hexdigest()[:12], 16)


class SecretDigest(PythonModel):
    def predict(self, context, model_input, params=None):
        return [digest(os.environ["{ENV}"]) for _ in range(len(model_input))]


mlflow.models.set_model(SecretDigest())
'''


def digest(value: str) -> int:
    return int(hashlib.sha256(value.encode()).hexdigest()[:12], 16)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def model(tmp_path: Path) -> Path:
    code = tmp_path / "secret_digest_model.py"
    code.write_text(MODEL_CODE)
    data = pd.DataFrame({"x": [1.0]})
    # Saving runs the model code too.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ENV, "at-save")
        patch.setenv("MLFLOW_UV_AUTO_DETECT", "false")
        mlflow.pyfunc.save_model(
            tmp_path / "model",
            python_model=str(code),
            signature=infer_signature(data),
            pip_requirements=[],
        )
    return tmp_path / "model"


@pytest.fixture
def served(model: Path, tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    secret = tmp_path / "secrets" / ENV
    secret.parent.mkdir()
    secret.write_text("first-value\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAESTRO_", "MLFLOW_"))}
    env["MAESTRO_SERVE_SECRET_REFRESH_SECONDS"] = "0.2"
    env["MAESTRO_TERMINATION_MESSAGE_PATH"] = str(tmp_path / "termination-log")
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(MAESTRO), "serve", "--host", "127.0.0.1", "--port", str(port), "--grpc-port", "0",
             "--model-uri", model.as_uri(), "--secret-file", f"{ENV}={secret}"],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert proc.poll() is None, log.read_text(errors="replace")
            try:
                return httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(ready, timeout=120, what="the server ready", why=lambda: log.read_text())
        yield url, secret, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def predicted(url: str) -> int:
    answer = httpx.post(f"{url}/invocations", json={"dataframe_records": [{"x": 1.0}]}, timeout=10)
    assert answer.status_code == 200, answer.text
    value: int = answer.json()["predictions"][0]
    return value


def reloads(url: str) -> float:
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for sample in family.samples:
            if sample.name == "maestro_secret_reloads_total" and sample.labels["env"] == ENV:
                return sample.value
    raise AssertionError("no maestro_secret_reloads_total series")


def test_a_rotated_secret_file_reaches_the_model(served: tuple[str, Path, Path]) -> None:
    url, secret, log = served
    assert predicted(url) == digest("first-value")
    assert reloads(url) == 0
    secret.write_text("second-value\n")
    eventually(
        lambda: predicted(url) == digest("second-value"), timeout=10, what="the rotated value"
    )
    assert reloads(url) == 1
    text = log.read_text()
    assert f"secret {ENV} changed (version 2)" in text
    assert "first-value" not in text and "second-value" not in text
