"""The serving pods' side of an ABTest, as one pure-ASGI middleware in front of the app.

Champion pods assign each prediction request (serving.abtest), answer the champion's share
themselves and forward the challenger's to the challenger's Service, marked so it is not
assigned again; every answer names its variant (`x-maestro-variant`) and carries the signed
request id. Any pod of the test counts `/feedback` for the variant that answered it
(serving.feedback) in ABTestMetrics, as sufficient statistics (count, sum, sum of squares)
the operator reads from Prometheus; outcomes it cannot attribute are counted as unmatched,
never guessed.

Outermost, in front of the request middleware: a forwarded request is the challenger's to
count, and a champion's request reaches the request middleware with its signed id."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from maestro.monitoring import metric_names
from maestro.serving.abtest import (
    VARIANT_HEADER,
    Split,
    Variant,
    assign_draw,
    assign_user,
    request_id,
)
from maestro.serving.metrics import ServingMetrics
from maestro.serving.settings import ServeSettings

PREDICT_PATHS = ("/invocations", "/predict")
# The binary tensor extension's header goes both ways: without it the body is no JSON.
BINARY_HEADER = b"inference-header-content-length"
FORWARD_HEADERS = (
    b"content-type",
    b"authorization",
    b"traceparent",
    b"tracestate",
    BINARY_HEADER,
)
FORWARD_TIMEOUT = 30.0
# test_id: the same name may be tested again later; its figures must not mix.
LABELS = ("deployment", "abtest", "test_id", "variant")


def is_prediction(method: str, path: str) -> bool:
    return method == "POST" and (
        path in PREDICT_PATHS or (path.startswith("/v2/models/") and path.endswith("/infer"))
    )


class ABTestMetrics:
    """Per-variant assignments and outcome statistics, summed over pods by the operator."""

    def __init__(self, registry: CollectorRegistry, deployment: str, split: Split) -> None:
        bind = {"deployment": deployment, "abtest": split.name, "test_id": split.test_id}
        self._assigned = Counter(
            metric_names.ABTEST_ASSIGNMENTS,
            "Requests assigned, by variant.",
            LABELS,
            registry=registry,
        )
        self._expected = Counter(
            metric_names.ABTEST_EXPECTED,
            "Sum of each assignment's probability per variant (the split's expected counts).",
            LABELS,
            registry=registry,
        )
        self._outcomes = Counter(
            metric_names.ABTEST_OUTCOMES,
            "Outcomes received, by variant.",
            LABELS,
            registry=registry,
        )
        # Gauges: a continuous outcome may be negative, which a counter cannot add.
        self._sum = Gauge(
            metric_names.ABTEST_OUTCOME_SUM, "Sum of the outcomes.", LABELS, registry=registry
        )
        self._squares = Gauge(
            metric_names.ABTEST_OUTCOME_SQUARES,
            "Sum of the squared outcomes.",
            LABELS,
            registry=registry,
        )
        self.unmatched = Counter(
            metric_names.ABTEST_UNMATCHED,
            "Feedback that names no request or user of the test (never attributed).",
            ["deployment", "abtest", "test_id", "reason"],
            registry=registry,
        )
        self._bind = bind
        for variant in Variant:
            for family in (
                self._assigned,
                self._expected,
                self._outcomes,
                self._sum,
                self._squares,
            ):
                family.labels(**bind, variant=variant.value)

    def assigned(self, variant: Variant, challenger_share: float) -> None:
        """One assignment; `challenger_share`: the probability it had of the challenger."""
        self._assigned.labels(**self._bind, variant=variant.value).inc()
        for v, p in (
            (Variant.CHALLENGER, challenger_share),
            (Variant.CHAMPION, 1 - challenger_share),
        ):
            self._expected.labels(**self._bind, variant=v.value).inc(p)

    def unmatched_feedback(self, reason: str) -> None:
        self.unmatched.labels(**self._bind, reason=reason).inc()

    def outcome(self, variant: Variant, value: float) -> None:
        self._outcomes.labels(**self._bind, variant=variant.value).inc()
        self._sum.labels(**self._bind, variant=variant.value).inc(value)
        self._squares.labels(**self._bind, variant=variant.value).inc(value * value)


@dataclass(frozen=True)
class Role:
    """This pod's part in the test: the variant it serves and, on the champion's pods, the
    challenger Service requests of the challenger's share go to."""

    split: Split
    variant: Variant
    peer_url: str | None = None
    max_body: int = 16 * 1024 * 1024  # the server's max_body_bytes, kept on forwards too


class _TooLarge(Exception):
    pass


async def _body(receive: Receive, limit: int) -> bytes | None:
    """The request's body; None when the client went away; _TooLarge over `limit`."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ABTestRouter:
    def __init__(self, app: ASGIApp, role: Role, metrics: ABTestMetrics) -> None:
        self.app, self.role, self.metrics = app, role, metrics
        self.client = httpx.AsyncClient(timeout=FORWARD_TIMEOUT) if role.peer_url else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if is_prediction(method, path):
            await self.predict(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _assign(self, headers: dict[bytes, bytes]) -> tuple[Variant, float]:
        """The variant, and the probability that it was the challenger: the split's share
        for a draw, 0 or 1 for a known user (whose requests all go one way, so the expected
        counts follow the users there are, not the share)."""
        split = self.role.split
        if split.sticky_header:
            user = headers.get(split.sticky_header.lower().encode())
            if user:
                variant = assign_user(split, user.decode("latin-1"))
                return variant, float(variant is Variant.CHALLENGER)
        draw = assign_draw(split, secrets.randbelow(2**53) / 2**53)
        return draw, split.challenger_percent / 100

    async def predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        marked = headers.get(VARIANT_HEADER.encode())
        if marked is not None or self.role.variant is Variant.CHALLENGER or not self.role.peer_url:
            # Assigned upstream (or a direct call): this pod's variant answers.
            await self.app(scope, receive, self._naming(send, self.role.variant))
            return
        variant, challenger_probability = self._assign(headers)
        self.metrics.assigned(variant, challenger_probability)
        rid = request_id(self.role.split, variant, secrets.token_hex(16))
        if variant is Variant.CHAMPION:
            kept = [(k, v) for k, v in scope["headers"] if k != b"x-request-id"]
            scope = {**scope, "headers": [*kept, (b"x-request-id", rid.encode())]}
            await self.app(scope, receive, self._naming(send, variant))
            return
        try:
            body = await _body(receive, self.role.max_body)
        except _TooLarge:
            error = json.dumps({"error": f"body: larger than {self.role.max_body} bytes"})
            await _answer(send, 413, error.encode(), [(b"content-type", b"application/json")])
            return
        if body is not None:
            await self.forward(scope, body, rid, send)

    async def forward(self, scope: Scope, body: bytes, rid: str, send: Send) -> None:
        assert self.client is not None and self.role.peer_url is not None
        headers = {
            k.decode(): v.decode("latin-1") for k, v in scope["headers"] if k in FORWARD_HEADERS
        }
        headers |= {"x-request-id": rid, VARIANT_HEADER: Variant.CHALLENGER.value}
        query = scope.get("query_string", b"").decode()
        url = self.role.peer_url.rstrip("/") + scope["path"] + (f"?{query}" if query else "")
        try:
            answer = await self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as err:
            message = json.dumps({"error": f"the challenger did not answer: {err}"}).encode()
            await _answer(send, 502, message, self._headers(Variant.CHALLENGER, rid))
            return
        out = [(b"content-type", answer.headers.get("content-type", "application/json").encode())]
        binary = answer.headers.get(BINARY_HEADER.decode())
        if binary is not None:
            out.append((BINARY_HEADER, binary.encode()))
        await _answer(
            send, answer.status_code, answer.content, out + self._headers(Variant.CHALLENGER, rid)
        )

    def _headers(self, variant: Variant, rid: str) -> list[tuple[bytes, bytes]]:
        return [(b"x-request-id", rid.encode()), (VARIANT_HEADER.encode(), variant.value.encode())]

    def _naming(self, send: Send, variant: Variant) -> Send:
        async def named(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    *message.get("headers", []),
                    (VARIANT_HEADER.encode(), variant.value.encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        return named


def abtest_role(
    settings: ServeSettings, metrics: ServingMetrics
) -> tuple[Role, ABTestMetrics] | None:
    """This pod's part in an ABTest and its metrics, when the operator named one."""
    if not settings.abtest:
        return None
    if not settings.abtest_key or not settings.abtest_variant:
        raise ValueError("abtest: the test's key and this pod's variant are required too")
    split = Split(
        name=settings.abtest,
        key=settings.abtest_key.encode(),
        challenger_percent=settings.abtest_challenger_percent,
        sticky_header=settings.abtest_split_header,
    )
    role = Role(
        split, Variant(settings.abtest_variant), settings.abtest_peer_url, settings.max_body_bytes
    )
    return role, ABTestMetrics(metrics.registry, metrics.deployment, split)
