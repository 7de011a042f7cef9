"""The model registry reads of ModelDeployments over MLflow's REST API, without MLflow.

Importing `mlflow` costs the operator about 120 MB of memory (pandas, numpy, scipy and
pyarrow come with it) and seconds of start-up, while a ModelDeployment only asks which
version a `models:/` URI names and which flavors that version's MLmodel has. Those few
calls go straight to the tracking server here, for http(s) servers with no credentials or
MLflow's plain ones (MLFLOW_TRACKING_TOKEN, or MLFLOW_TRACKING_USERNAME and _PASSWORD);
any other setup (TLS client certificates, an auth plugin, a file or database tracking URI,
artifacts the server does not proxy) keeps MLflow's client.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from maestro.serving.uris import parse_models_uri

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
# The error code of a 5xx from the artifact proxy for a version the registry has.
ARTIFACT_UNREADABLE = "ARTIFACT_UNREADABLE"
# MLflow's client default for MLFLOW_HTTP_REQUEST_TIMEOUT, seconds.
DEFAULT_TIMEOUT = 120.0
# MLflow client settings this reader does not implement: with any of them, MLflow's client.
CLIENT_ONLY_SETTINGS = (
    "MLFLOW_TRACKING_AUTH",
    "MLFLOW_TRACKING_INSECURE_TLS",
    "MLFLOW_TRACKING_SERVER_CERT_PATH",
    "MLFLOW_TRACKING_CLIENT_CERT_PATH",
)


class RestError(Exception):
    """An error answer of the tracking server, with MLflow's error code (as MlflowException
    has it, so `registry.is_missing` reads both alike)."""

    def __init__(self, message: str, error_code: str, status: int) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.status = status


class Unsupported(Exception):
    """The REST reader cannot answer this one: MLflow's client does."""


@dataclass(frozen=True)
class Version:
    """The one field of MLflow's ModelVersion that the operator reads."""

    version: str


class RestRegistry:
    """The MlflowClient registry reads `Registry` makes, with the same names."""

    def __init__(self, tracking_uri: str, env: Mapping[str, str]) -> None:
        self.base = tracking_uri.rstrip("/")
        # MLflow's client setting, which the operator sets from its request timeout (a
        # reconcile waiting 30 s on a registry that is down holds a worker thread).
        self.timeout = float(env.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or DEFAULT_TIMEOUT)
        self.headers = {"Accept": "application/json", "User-Agent": "maestro-operator"}
        if env.get("MLFLOW_TRACKING_TOKEN"):
            self.headers["Authorization"] = f"Bearer {env['MLFLOW_TRACKING_TOKEN']}"
        elif env.get("MLFLOW_TRACKING_USERNAME") and env.get("MLFLOW_TRACKING_PASSWORD"):
            pair = f"{env['MLFLOW_TRACKING_USERNAME']}:{env['MLFLOW_TRACKING_PASSWORD']}"
            self.headers["Authorization"] = f"Basic {base64.b64encode(pair.encode()).decode()}"

    @staticmethod
    def usable(tracking_uri: str, env: Mapping[str, str]) -> bool:
        scheme = urllib.parse.urlsplit(tracking_uri).scheme
        return scheme in ("http", "https") and not any(env.get(k) for k in CLIENT_ONLY_SETTINGS)

    def _request(self, path: str, query: Mapping[str, str] | None = None,
                 body: Any = None) -> bytes:  # fmt: skip
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        headers = self.headers | ({"Content-Type": "application/json"} if data else {})
        request = urllib.request.Request(url, data=data, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as rsp:
                content: bytes = rsp.read()
                return content
        except urllib.error.HTTPError as err:
            text = err.read().decode(errors="replace")
            try:
                answer = json.loads(text)
            except ValueError:
                answer = {}
            code = answer.get("error_code") if isinstance(answer, dict) else None
            message = answer.get("message") if isinstance(answer, dict) else None
            raise RestError(
                f"{err.code} from {path}: {message or text[:300]}",
                str(code or ("NOT_FOUND" if err.code == 404 else f"HTTP_{err.code}")),
                err.code,
            ) from None

    def _json(self, path: str, query: Mapping[str, str] | None = None, body: Any = None) -> Any:
        return json.loads(self._request(API + path, query, body) or b"{}")

    def get_model_version_by_alias(self, name: str, alias: str) -> Version:
        found = self._json("/registered-models/alias", {"name": name, "alias": alias})
        return Version(str(found["model_version"]["version"]))

    def get_model_version(self, name: str, version: str) -> Version:
        found = self._json("/model-versions/get", {"name": name, "version": version})
        return Version(str(found["model_version"]["version"]))

    def search_model_versions(self, filter_string: str) -> list[Version]:
        versions: list[Version] = []
        token = ""
        while True:
            query = {"filter": filter_string} | ({"page_token": token} if token else {})
            page = self._json("/model-versions/search", query)
            versions += [Version(str(v["version"])) for v in page.get("model_versions", [])]
            token = page.get("next_page_token") or ""
            if not token:
                return versions

    def get_latest_versions(self, name: str, stages: list[str]) -> list[Version]:
        found = self._json("/registered-models/get-latest-versions",
                           body={"name": name, "stages": stages})  # fmt: skip
        return [Version(str(v["version"])) for v in found.get("model_versions", [])]

    def mlmodel(self, uri: str) -> dict[str, Any]:
        """The MLmodel file of a registry version (`models:/name/version`), read through
        the server's artifact proxy. Unsupported for runs, aliases and artifacts stored
        where the server does not proxy them (s3://... straight from the client)."""
        ref = parse_models_uri(uri)
        if ref is None or not ref.name or not ref.version:
            raise Unsupported(uri)
        found = self._json("/model-versions/get-download-uri",
                           {"name": ref.name, "version": ref.version})  # fmt: skip
        location = urllib.parse.urlsplit(str(found.get("artifact_uri") or ""))
        if location.scheme != "mlflow-artifacts" or location.netloc:
            raise Unsupported(uri)
        path = urllib.parse.quote(location.path.strip("/") + "/MLmodel")
        try:
            content = self._request(f"{ARTIFACTS}/{path}")
        except RestError as err:
            if err.status < 500:
                raise
            # The registry answered; its artifact proxy failed to fetch the file from the
            # artifact store (e.g. a version whose artifacts were deleted or never
            # uploaded). MLflow's client reports that version as not found: so do we, and
            # it is asked again with the registry's back-off, not retried as an outage.
            raise RestError(str(err), ARTIFACT_UNREADABLE, err.status) from None
        loaded = yaml.safe_load(content)
        return loaded if isinstance(loaded, dict) else {}
