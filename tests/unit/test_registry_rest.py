"""core.registry_rest: ModelDeployments' registry reads over MLflow's REST API answer as
MLflow's client does (versions, missing models, flavors), without importing MLflow."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from maestro.operators.core import registry as registry_module
from maestro.operators.core.registry import (
    ModelNotFound,
    ModelNotServable,
    Registry,
    is_missing,
)
from maestro.operators.core.registry_rest import RestError, RestRegistry

pytestmark = pytest.mark.unit

MLMODEL = "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n  sklearn: {}\n"
ONNX_ONLY = "flavors:\n  onnx: {}\n"


class FakeMlflow(BaseHTTPRequestHandler):
    """Answers as an MLflow 3 tracking server with `iris` versions 1 (sklearn) and 2 (onnx
    only), 3 (no MLmodel) and 4 (artifacts gone from the object store: the proxy's 500),
    alias champion -> 1, and artifacts proxied by the server."""

    def _send(self, status: int, body: Any) -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        missing = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "not found"}
        if url.path.endswith("/registered-models/alias"):
            if (q["name"], q["alias"]) == ("iris", "champion"):
                return self._send(200, {"model_version": {"name": "iris", "version": "1"}})
            return self._send(404, missing)
        if url.path.endswith("/model-versions/get"):
            if q["name"] == "iris" and q["version"] in ("1", "2"):
                return self._send(200, {"model_version": {"version": q["version"]}})
            return self._send(404, missing)
        if url.path.endswith("/model-versions/search"):
            if q.get("page_token") == "p2":
                return self._send(200, {"model_versions": [{"version": "2"}]})
            return self._send(200, {"model_versions": [{"version": "1"}], "next_page_token": "p2"})
        if url.path.endswith("/model-versions/get-download-uri"):
            if q["name"] == "iris" and q["version"] in ("1", "2", "3", "4"):
                uri = f"mlflow-artifacts:/7/models/m-{q['version']}/artifacts"
                return self._send(200, {"artifact_uri": uri})
            if q["name"] == "s3model":
                return self._send(200, {"artifact_uri": "s3://bucket/model"})
            return self._send(404, missing)
        if url.path == "/api/2.0/mlflow-artifacts/artifacts/7/models/m-1/artifacts/MLmodel":
            return self._send(200, MLMODEL)
        if url.path == "/api/2.0/mlflow-artifacts/artifacts/7/models/m-2/artifacts/MLmodel":
            return self._send(200, ONNX_ONLY)
        if url.path == "/api/2.0/mlflow-artifacts/artifacts/7/models/m-4/artifacts/MLmodel":
            # What MLflow 3's artifact proxy answers when the object store lacks the file.
            failed = "The following failures occurred while downloading one or more artifacts"
            return self._send(500, {"error_code": "INTERNAL_ERROR", "message": failed})
        return self._send(404, "<html>not found</html>")

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeMlflow)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture
def registry(server: str, monkeypatch: pytest.MonkeyPatch) -> Registry:
    def no_mlflow() -> None:
        raise AssertionError("MLflow imported")

    monkeypatch.setattr(registry_module, "import_mlflow", no_mlflow)
    return Registry(server)


@pytest.mark.parametrize(
    ("uri", "version"),
    [
        ("models:/iris@champion", "1"),
        ("models:/iris/2", "2"),
        ("models:/iris/latest", "2"),
        ("runs:/abc/model", None),
    ],
    ids=["alias", "version", "latest-over-two-pages", "outside-the-registry"],
)
def test_versions_resolve_without_mlflow(registry: Registry, uri: str, version: str) -> None:
    assert registry.resolve_model_version(uri) == version


@pytest.mark.parametrize("uri", ["models:/iris@typo", "models:/iris/9", "models:/nope/1"])
def test_a_missing_model_is_missing_as_mlflow_says_it(registry: Registry, uri: str) -> None:
    with pytest.raises(RestError) as caught:
        registry.resolve_model_version(uri)
    assert is_missing(caught.value)
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_servable_reads_the_mlmodel_through_the_artifact_proxy(registry: Registry) -> None:
    registry.servable("models:/iris/1")
    with pytest.raises(ModelNotServable, match="onnx"):
        registry.servable("models:/iris/2")
    with pytest.raises(ModelNotFound):
        registry.servable("models:/iris/3")  # the version's artifacts are gone
    # The registry has it, the artifact store not: missing (as MLflow's client says), not
    # an outage retried forever (the registry's back-off asks again).
    with pytest.raises(ModelNotFound, match="artifact store"):
        registry.servable("models:/iris/4")
    with pytest.raises(ModelNotFound):
        registry.servable("models:/nope/1")


def test_artifacts_the_server_does_not_proxy_go_to_mlflow(registry: Registry) -> None:
    with pytest.raises(AssertionError, match="MLflow imported"):
        registry.servable("models:/s3model/1")


def test_credentials_and_settings_that_keep_mlflows_client() -> None:
    assert RestRegistry.usable("http://mlflow:5000", {})
    assert not RestRegistry.usable("file:///mlruns", {})
    assert not RestRegistry.usable("databricks", {})
    assert not RestRegistry.usable("https://m", {"MLFLOW_TRACKING_INSECURE_TLS": "true"})
    token = RestRegistry("http://m", {"MLFLOW_TRACKING_TOKEN": "t"})
    assert token.headers["Authorization"] == "Bearer t"
    basic = RestRegistry(
        "http://m", {"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "p"}
    )
    assert basic.headers["Authorization"] == "Basic dTpw"


def test_requests_wait_as_long_as_mlflows_client_would() -> None:
    # The operator sets MLFLOW_HTTP_REQUEST_TIMEOUT from its request timeout.
    assert RestRegistry("http://m", {"MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}).timeout == 5.0
    assert RestRegistry("http://m", {}).timeout == 120.0
