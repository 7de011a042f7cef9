"""`maestro serve` / `maestro predict-batch`: their help, their settings, and the layering
(serving never imports the operators; the CLI imports serving only when it runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from maestro.serving.settings import ServeSettings

pytestmark = pytest.mark.unit


def modules_after(statement: str) -> set[str]:
    code = f"{statement}\nimport sys\nprint('\\n'.join(sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_serving_never_imports_the_operators() -> None:
    modules = modules_after(
        "import maestro.serving.app, maestro.serving.server, maestro.serving.batch,"
        " maestro.serving.loader"
    )
    assert "maestro.serving.app" in modules
    assert not {m for m in modules if m.startswith("maestro.operators")}
    assert not {"kopf", "kubernetes"} & modules


def test_the_cli_loads_serving_only_to_run_it() -> None:
    modules = modules_after(
        "from maestro.operators.cli import build_parser\nbuild_parser().format_help()"
    )
    assert not {m for m in modules if m.startswith(("maestro.serving", "mlflow", "fastapi"))}


def help_text(*command: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "maestro.operators.cli", *command, "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_serve_help_explains_options_and_environment() -> None:
    text = help_text("serve")
    for word in (
        "--model-uri",
        "--model NAME=URI",
        "--ensemble",
        "--shadow-model-uri",
        "--max-queue",
        "MLFLOW_TRACKING_URI",
        "MAESTRO_DEPLOYMENT",
        "MAESTRO_REVISION",
        "MAESTRO_MODEL_VERSION",
        "MAESTRO_BIND_HOST",
        "MAESTRO_SERVE_MAX_BATCH_WAIT_MS",
        "MAESTRO_SERVE_PREDICTION_LOG_SAMPLE",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "/v2/models/NAME/infer",
        "maestro_requests_total",
        "exit status",
    ):
        assert word in text, word
    batch = help_text("predict-batch")
    for word in ("--input", "--output", "--chunk-size", "MLFLOW_TRACKING_URI", "exit status"):
        assert word in batch, word


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAESTRO_SERVE_MODEL_URI", "models:/fraud@champion")
    monkeypatch.setenv("MAESTRO_SERVE_MODELS", '{"b": "runs:/abc/model"}')
    monkeypatch.setenv("MAESTRO_SERVE_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("MAESTRO_DEPLOYMENT", "fraud")
    monkeypatch.setenv("MAESTRO_REVISION", "v3")
    monkeypatch.setenv("MAESTRO_BIND_HOST", "10.244.0.7")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    settings = ServeSettings(port=9000)  # a flag overrides its variable
    assert settings.named_uris() == {"fraud": "models:/fraud@champion", "b": "runs:/abc/model"}
    assert (settings.max_batch_size, settings.port, settings.listen_host) == (
        16,
        9000,
        "10.244.0.7",
    )
    assert (settings.deployment, settings.revision) == ("fraud", "v3")
    assert settings.tracking_uri == "http://mlflow:5000"
    assert ServeSettings(host="127.0.0.1").listen_host == "127.0.0.1"


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({}, "model_uri"),
        ({"model_uri": "models:/a/1", "prediction_log_sample": 1.5}, "prediction_log_sample"),
        ({"model_uri": "models:/a/1", "max_batch_size": 0}, "max_batch_size"),
        ({"model_uri": "models:/a/1", "ensemble": "vote"}, "ensemble"),
        ({"model_uri": "models:/a/1", "models": {"a": "models:/a/2"}}, "models"),
        ({"model_uri": "models:/a/1", "ensemble": "median"}, "ensemble"),
    ],
    ids=["nothing", "sample", "batch", "ensemble-of-one", "same-name", "ensemble-method"],
)
def test_bad_settings_name_the_field(
    values: dict[str, object], field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MAESTRO_SERVE_MODEL_URI", "MAESTRO_SERVE_MODELS"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match=field):
        ServeSettings(**values)  # type: ignore[arg-type]


def test_serve_refuses_bad_flags_with_exit_2(tmp_path: Path) -> None:
    maestro = Path(sys.executable).parent / "maestro"
    done = subprocess.run(
        [str(maestro), "serve", "--model", "no-equals-sign"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "expected NAME=URI" in done.stderr
    batch = subprocess.run(
        [str(maestro), "predict-batch", "--model-uri", "file:///nowhere", "--input",
         str(tmp_path / "missing.parquet"), "--output", str(tmp_path / "out.parquet")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert batch.returncode == 2 and "no MLmodel file" in batch.stderr


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("TOKEN", "expected ENV=PATH"),
        ("FEATURE-TOKEN=/vault/secrets/x", "not an environment variable name"),
        ("TOKEN=vault/secrets/TOKEN", "not absolute"),
    ],
    ids=["no-equals", "bad-name", "relative"],
)
def test_serve_refuses_a_bad_secret_file_with_exit_2(spec: str, reason: str) -> None:
    maestro = Path(sys.executable).parent / "maestro"
    done = subprocess.run(
        [str(maestro), "serve", "--model-uri", "file:///nowhere", "--secret-file", spec],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "--secret-file" in done.stderr and reason in done.stderr and spec in done.stderr


@pytest.mark.parametrize("content", [None, "\n"], ids=["missing", "empty"])
def test_serve_stops_before_serving_when_a_secret_file_has_no_value(
    tmp_path: Path, content: str | None
) -> None:
    maestro = Path(sys.executable).parent / "maestro"
    secret = tmp_path / "secrets" / "FEATURE_STORE_TOKEN"
    if content is not None:
        secret.parent.mkdir()
        secret.write_text(content)
    termination = tmp_path / "termination-log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAESTRO_", "MLFLOW_"))}
    env["MAESTRO_TERMINATION_MESSAGE_PATH"] = str(termination)
    done = subprocess.run(
        [str(maestro), "serve", "--model-uri", "file:///nowhere", "--host", "127.0.0.1",
         "--port", "0", "--secret-file", f"FEATURE_STORE_TOKEN={secret}"],
        capture_output=True, text=True, check=False, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    message = termination.read_text()
    reason = "is missing: was the Vault Agent injected?" if content is None else "is empty"
    assert message.startswith(f"secret file {secret} for FEATURE_STORE_TOKEN {reason}"), message
    assert '"message": "starting"' not in done.stderr  # stopped before the server started
