"""`maestro serve` without a mesh: a bearer token from a file (rotated in place) or a JWT
signed by a key of a JWKS. Without credentials 401, with wrong ones 403; probes and
/metrics stay open. In-process (TestClient); the JWKS is served from a local port."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm

from maestro.localplatform.wait import eventually
from maestro.serving.app import create_app
from maestro.serving.loader import LoadedModel
from maestro.serving.schema import Column, InputSchema, Rows
from maestro.serving.settings import ServeSettings
from maestro.serving.state import ModelSet

pytestmark = pytest.mark.unit

BODY = {"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP64", "data": [1.0]}]}
INFER = "/v2/models/m/infer"


def doubled(rows: np.ndarray[Any, Any]) -> Any:
    return np.asarray(rows, dtype=float)[:, 0] * 2


def models(_: ServeSettings) -> ModelSet:
    schema = InputSchema(columns=(Column("x", "double"),))
    loaded = LoadedModel(
        name="m",
        uri="models:/m/1",
        version="1",
        flavor="sklearn",
        schema=schema,
        predict=doubled,
        convention="numpy",
        example=Rows([[1.0]], ["x"], "example"),
        load_seconds=0.0,
    )
    return ModelSet([loaded], "m", None)


@pytest.fixture
def serve() -> Iterator[Any]:
    opened: list[TestClient] = []

    def start(**auth: Any) -> TestClient:
        settings = ServeSettings(model_uri="models:/m/1", model_name="m", **auth)
        client = TestClient(create_app(settings, loader=models, freeze_gc=False)).__enter__()
        opened.append(client)
        eventually(lambda: client.get("/v2/health/ready").status_code == 200, timeout=10)
        return client

    yield start
    for client in opened:
        client.__exit__(None, None, None)


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_a_shared_token_from_a_file_and_its_rotation(serve: Any, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-1\n")
    client = serve(auth_token_file=token)

    assert client.post(INFER, json=BODY).status_code == 401
    refused = client.post(INFER, json=BODY, headers={"authorization": "Basic czNjcmV0"})
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="maestro"'
    assert client.post(INFER, json=BODY, headers=bearer("s3cret-2")).status_code == 403
    ok = client.post(INFER, json=BODY, headers=bearer("s3cret-1"))
    assert ok.status_code == 200 and ok.json()["outputs"][0]["data"] == [2.0]

    # Vault rewrites the file: the new value is taken, the old one refused.
    time.sleep(0.01)
    token.write_text("s3cret-2-longer\n")
    assert client.post(INFER, json=BODY, headers=bearer("s3cret-2-longer")).status_code == 200
    assert client.post(INFER, json=BODY, headers=bearer("s3cret-1")).status_code == 403


def test_probes_and_metrics_stay_open_and_refusals_are_counted(serve: Any, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    client = serve(auth_token_file=token)
    for path in ("/v2/health/live", "/v2/health/ready", "/metrics"):
        assert client.get(path).status_code == 200, path
    assert client.post(INFER, json=BODY).status_code == 401
    metrics = client.get("/metrics").text
    assert 'code="401"' in metrics


class Jwks:
    """An identity provider's JWKS endpoint, and tokens signed with its key."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        document = json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]})

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = document.encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def token(self, key: Any = None, **claims: Any) -> str:
        payload = {"aud": "maestro", "iss": "https://idp.example", "exp": time.time() + 60}
        return jwt.encode(
            {**payload, **claims}, key or self.key, algorithm="RS256", headers={"kid": "k1"}
        )


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    provider = Jwks()
    yield provider
    provider.server.shutdown()


def test_a_jwt_checked_against_the_jwks(serve: Any, jwks: Jwks) -> None:
    client = serve(
        auth_jwks_url=jwks.url, auth_jwt_audience="maestro", auth_jwt_issuer="https://idp.example"
    )
    assert client.post(INFER, json=BODY, headers=bearer(jwks.token())).status_code == 200
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for bad in (
        jwks.token(key=other_key),
        jwks.token(aud="someone-else"),
        jwks.token(iss="https://evil.example"),
        jwks.token(exp=time.time() - 10),
        "not-a-jwt",
    ):
        assert client.post(INFER, json=BODY, headers=bearer(bad)).status_code == 403, bad


def test_jwt_claims_without_a_jwks_are_bad_settings() -> None:
    with pytest.raises(ValueError, match="auth_jwks_url"):
        ServeSettings(model_uri="models:/m/1", auth_jwt_audience="maestro")
