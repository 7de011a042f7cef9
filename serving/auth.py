"""Who may call `maestro serve` when no mesh stands in front of it: a shared bearer token
(from a file, e.g. delivered by Vault, compared in constant time) or a JWT checked against
a JWKS. No credentials: 401; wrong ones: 403. Health and /metrics stay open for the
kubelet's probes and Prometheus."""

from __future__ import annotations

import hmac
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from maestro.serving.middleware import HEALTH_PATHS
from maestro.serving.settings import ServeSettings

log = logging.getLogger(__name__)
JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "PS256")


class Check(Protocol):
    def __call__(self, token: str) -> bool: ...


@dataclass
class SharedToken:
    """The token in `path`, read again whenever the file changes (a rotated secret)."""

    path: Path
    _seen: tuple[float, int] | None = None
    _token: bytes = b""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _current(self) -> bytes:
        stat = os.stat(self.path)
        key = (stat.st_mtime, stat.st_size)
        with self._lock:
            if key != self._seen:
                self._token = self.path.read_bytes().strip()
                self._seen = key
            return self._token

    def __call__(self, token: str) -> bool:
        try:
            expected = self._current()
        except OSError as err:
            log.error("cannot read the auth token file %s: %s", self.path, err.strerror)
            return False
        return bool(expected) and hmac.compare_digest(token.encode(), expected)


@dataclass
class JwtCheck:
    """A JWT signed by a key of the JWKS (fetched, then cached), with the required claims."""

    jwks_url: str
    audience: str | None = None
    issuer: str | None = None
    _client: Any = None

    def __call__(self, token: str) -> bool:
        import jwt

        if self._client is None:
            self._client = jwt.PyJWKClient(self.jwks_url, cache_keys=True, lifespan=300)
        try:
            key = self._client.get_signing_key_from_jwt(token)
            jwt.decode(
                token,
                key.key,
                algorithms=list(JWT_ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.PyJWKClientConnectionError as err:
            log.error("cannot fetch the JWKS %s: %s", self.jwks_url, err)
            return False
        except jwt.PyJWTError:
            return False
        return True


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` value (HTTP header or gRPC metadata)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def accepted(checks: Sequence[Check], token: str) -> bool:
    """Whether any check accepts the token; each runs in a thread (a JWKS fetch or a file
    read must not stall the event loop)."""
    for check in checks:
        if await run_in_threadpool(check, token):
            return True
    return False


def _bearer(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"authorization":
            return bearer_token(value.decode("latin-1"))
    return None


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"error": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="maestro"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class AuthMiddleware:
    """401 without a bearer token, 403 when no check accepts it; open paths pass."""

    def __init__(self, app: ASGIApp, checks: Sequence[Check]) -> None:
        self.app = app
        self.checks = tuple(checks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in HEALTH_PATHS:
            await self.app(scope, receive, send)
            return
        token = _bearer(scope)
        if token is None:
            await _refuse(send, 401, "send Authorization: Bearer <token>")
            return
        if await accepted(self.checks, token):
            await self.app(scope, receive, send)
            return
        await _refuse(send, 403, "the bearer token is not accepted")


def checks_from(settings: ServeSettings) -> list[Check]:
    """The checks the settings ask for; none: the server is open."""
    found: list[Check] = []
    if settings.auth_token_file is not None:
        found.append(SharedToken(settings.auth_token_file))
    if settings.auth_jwks_url:
        found.append(
            JwtCheck(settings.auth_jwks_url, settings.auth_jwt_audience, settings.auth_jwt_issuer)
        )
    return found
