"""A stand-in for the Vault Agent injector's webhook (vault-k8s), for the local platform only.

HashiCorp's vault-k8s is a Go program, and its module (github.com/hashicorp/vault-k8s)
cannot be fetched from the Go module proxy here, so the local platform cannot build it.
This replaces exactly one part of it: the mutating admission webhook that turns Vault
Agent annotations on a pod into the `vault-agent-init` init container, the `vault-agent`
sidecar and their volumes (`maestro.localplatform.vault_injection` renders the patch).
Nothing else is imitated: those containers run the real `vault agent` with the config
rendered here, logging in through Vault's real Kubernetes auth. Only the local platform
starts this server; it is no replacement for vault-k8s anywhere else.

`python -m maestro.localplatform.vault_injector --listen HOST:PORT --cert FILE --key FILE
--vault-address URL [--image IMG]` serves HTTPS: `POST /mutate` takes and answers an
AdmissionReview v1, `GET /healthz` answers `ok`.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import ssl
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from maestro.localplatform import vault_injection
from maestro.localplatform.procs import serve_until_terminated

log = logging.getLogger("vault-injector")
MAX_BODY = 4 * 1024 * 1024  # the API server's own limit on an object is 3 MiB


class MalformedReview(ValueError):
    """The body is not an AdmissionReview v1 with a request uid and an object."""


def review_response(review: Any, vault_address: str, image: str) -> dict[str, Any]:
    """The AdmissionReview answering `review` (already parsed from JSON)."""
    if not isinstance(review, dict) or review.get("kind") != "AdmissionReview":
        raise MalformedReview("not an AdmissionReview")
    request = review.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str):
        raise MalformedReview("no request uid")
    pod = request.get("object")
    if not isinstance(pod, dict):
        raise MalformedReview("no object in the request")
    response: dict[str, Any] = {"uid": request["uid"], "allowed": True}
    try:
        ops = vault_injection.inject(pod, vault_address, image)
    except ValueError as err:
        log.info("denied %s: %s", _pod_name(request, pod), err)
        response["allowed"] = False
        response["status"] = {"code": 400, "message": f"vault agent injection: {err}"}
    else:
        if ops:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
            _log_injected(request, pod)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


def _pod_name(request: dict[str, Any], pod: dict[str, Any]) -> str:
    metadata = pod.get("metadata") or {}
    namespace = request.get("namespace") or metadata.get("namespace") or "?"
    # Pods of Jobs and ReplicaSets have only a generateName when they are created.
    name = request.get("name") or metadata.get("name") or f"{metadata.get('generateName', '')}*"
    return f"{namespace}/{name}"


def _log_injected(request: dict[str, Any], pod: dict[str, Any]) -> None:
    # Names only: the templates and the rendered config may say where secrets live.
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    names = [secret.name for secret in vault_injection.secrets(annotations)]
    log.info(
        "injected vault agent into %s (role %s, secrets %s)",
        _pod_name(request, pod),
        annotations.get(vault_injection.ROLE),
        ", ".join(names) or "none",
    )


def make_handler(vault_address: str, image: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # The TLS handshake happens on the first read, here in the request's thread: a
        # client that never finishes it is dropped after this many seconds.
        timeout = 30

        def do_GET(self) -> None:
            if urlsplit(self.path).path == "/healthz":
                self._send(200, b"ok", "text/plain")
            else:
                self._send(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            # The API server adds ?timeout=10s.
            if urlsplit(self.path).path != "/mutate":
                self._send(404, b"not found", "text/plain")
                return
            raw_length = self.headers.get("Content-Length") or "0"
            length = int(raw_length) if raw_length.isdigit() else 0
            if not 0 < length <= MAX_BODY:
                self._send(400, b"a body of 1 byte to 4 MiB is required", "text/plain")
                return
            try:
                answer = review_response(json.loads(self.rfile.read(length)), vault_address, image)
            except (json.JSONDecodeError, UnicodeDecodeError, MalformedReview) as err:
                self._send(400, f"malformed AdmissionReview: {err}".encode(), "text/plain")
                return
            self._send(200, json.dumps(answer).encode(), "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # the API server's requests and health checks: one line per pod is enough

    return Handler


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Mostly failed handshakes (a plain-HTTP probe, an untrusting client): one line, not
        # the traceback socketserver would print.
        log.warning("connection from %s failed: %s", client_address[0], sys.exc_info()[1])


def make_server(
    host: str, port: int, cert: Path, key: Path, vault_address: str, image: str
) -> ThreadingHTTPServer:
    """The HTTPS server, bound (port 0 picks a free port) but not yet serving."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    server = _TLSServer((host, port), make_handler(vault_address, image))
    # Without the handshake on accept, one slow client cannot stall the accepting thread.
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maestro.localplatform.vault_injector",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--listen", required=True, help="HOST:PORT to serve HTTPS on")
    parser.add_argument("--cert", type=Path, required=True, help="serving certificate (PEM)")
    parser.add_argument("--key", type=Path, required=True, help="its private key (PEM)")
    parser.add_argument(
        "--vault-address", required=True, help="the agents' Vault address, unless annotated"
    )
    parser.add_argument("--image", default=vault_injection.DEFAULT_IMAGE, help="agent image")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--listen must be HOST:PORT, got {args.listen!r}")
    server = make_server(host, int(port), args.cert, args.key, args.vault_address, args.image)
    log.info("serving the vault agent injector at https://%s/mutate", args.listen)
    serve_until_terminated(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
