"""MLflow registry webhooks: what changed in the registry, told to the operator as it
happens, so a moved alias starts a rollout at once instead of at the next poll.

MLflow (3.3 and later) posts `{"entity", "action", "data": {"name", ...}}` for the events
the webhook subscribes to, signed with HMAC-SHA256 over `<delivery id>.<timestamp>.<body>`
(header `X-MLflow-Signature: v1,<base64>`). Deliveries with a wrong signature, or older
than the replay window, are refused. `verify` and `changed_model` are pure; `Receiver`
is the HTTP endpoint and `register` creates or updates the webhook in MLflow.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

EVENTS = ("model_version_alias.created", "model_version_alias.deleted", "model_version.created")
PATH = "/mlflow-webhook"
SIGNATURE = "X-MLflow-Signature"
TIMESTAMP = "X-MLflow-Timestamp"
DELIVERY = "X-MLflow-Delivery-Id"
REPLAY_WINDOW_SECONDS = 300


def signature(secret: str, delivery: str, timestamp: str, body: bytes) -> str:
    signed = f"{delivery}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(secret: str | None, headers: Mapping[str, str], body: bytes, now: float) -> str | None:
    """None when the delivery is authentic and fresh, else why it is refused."""
    if not secret:
        return None
    given = headers.get(SIGNATURE, "")
    delivery, timestamp = headers.get(DELIVERY, ""), headers.get(TIMESTAMP, "")
    if not given or not delivery or not timestamp.isdigit():
        return "unsigned delivery"
    if abs(now - int(timestamp)) > REPLAY_WINDOW_SECONDS:
        return "delivery outside the replay window"
    if not hmac.compare_digest(given, signature(secret, delivery, timestamp, body)):
        return "bad signature"
    return None


def changed_model(body: bytes) -> str | None:
    """The registered model an event is about, for the events the webhook subscribes to."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    if not isinstance(event, dict) or f"{event.get('entity')}.{event.get('action')}" not in EVENTS:
        return None
    data = event.get("data")
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) and name else None


class Receiver:
    """The webhook endpoint, on the operator's event loop (aiohttp)."""

    def __init__(
        self,
        listen: str,
        secret: str | None,
        on_change: Callable[[str], None],
        clock: Callable[[], float],
    ) -> None:
        host, _, port = listen.rpartition(":")
        self.host, self.port = host or "0.0.0.0", int(port)
        self.secret = secret
        self.on_change = on_change
        self.clock = clock
        self._runner: Any = None

    async def start(self) -> None:
        from aiohttp import web

        async def deliver(request: web.Request) -> web.Response:
            body = await request.read()
            refused = verify(self.secret, request.headers, body, self.clock())
            if refused is not None:
                log.warning("registry webhook refused: %s", refused)
                return web.Response(status=401, text=refused)
            model = changed_model(body)
            if model is not None:
                self.on_change(model)
            return web.Response(status=204)

        app = web.Application()
        app.router.add_post(PATH, deliver)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("receiving MLflow registry webhooks on %s:%d%s", self.host, self.port, PATH)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def register(client: Any, name: str, url: str, secret: str | None) -> None:
    """Create the operator's webhook `name` in MLflow, or point the existing one at `url`."""
    existing, token = None, None
    while existing is None:
        page = client.list_webhooks(max_results=100, page_token=token)
        existing = next((w for w in page if w.name == name), None)
        token = page.token
        if not token:
            break
    if existing is None:
        client.create_webhook(name=name, url=url, events=list(EVENTS), secret=secret)
    else:
        client.update_webhook(
            existing.webhook_id, url=url, events=list(EVENTS), secret=secret, status="ACTIVE"
        )
