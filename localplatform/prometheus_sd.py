"""Kubernetes pod discovery for Debian's Prometheus, over its HTTP service discovery.

Debian builds Prometheus without `kubernetes_sd_configs` (its Kubernetes client has too
many dependencies to package), so this bridge lists the pods of the local control plane
and serves them at GET /targets in the HTTP SD format, labelled exactly like
Prometheus' own `role: pod` discovery (`__meta_kubernetes_pod_*`). The scrape config's
relabel rules are therefore the ones a real `kubernetes_sd_configs` job would use.
`python -m maestro.localplatform.prometheus_sd --kubeconfig K --listen HOST:PORT`.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client, config

from maestro.localplatform.procs import serve_until_terminated

log = logging.getLogger("prometheus-sd")
META = "__meta_kubernetes_"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def label_name(name: str) -> str:
    """Prometheus' strutil.SanitizeLabelName: every invalid character becomes `_`."""
    return _INVALID.sub("_", name)


def _ready(status: dict[str, Any]) -> str:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status", "unknown")).lower()
    return "unknown"


def pod_target_groups(pod: dict[str, Any]) -> list[dict[str, Any]]:
    """HTTP SD target groups for one pod (camelCase API JSON), as Prometheus' pod role
    builds them: one target per container port, or the bare pod IP for a container
    without ports; none for a pod without an IP yet (pure)."""
    meta, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    ip = status.get("podIP")
    if not ip:
        return []
    common = {
        f"{META}namespace": meta["namespace"],
        f"{META}pod_name": meta["name"],
        f"{META}pod_ip": ip,
        f"{META}pod_ready": _ready(status),
        f"{META}pod_phase": status.get("phase", ""),
        f"{META}pod_node_name": spec.get("nodeName", ""),
        f"{META}pod_host_ip": status.get("hostIP", ""),
        f"{META}pod_uid": meta.get("uid", ""),
    }
    for kind, values in (
        ("label", meta.get("labels")),
        ("annotation", meta.get("annotations")),
    ):
        for key, value in (values or {}).items():
            common[f"{META}pod_{kind}_{label_name(key)}"] = value
            common[f"{META}pod_{kind}present_{label_name(key)}"] = "true"
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    if owner:
        common[f"{META}pod_controller_kind"] = owner["kind"]
        common[f"{META}pod_controller_name"] = owner["name"]

    groups = []
    for container in spec.get("containers") or []:
        per_container = {
            **common,
            f"{META}pod_container_name": container["name"],
            f"{META}pod_container_image": container.get("image", ""),
            f"{META}pod_container_init": "false",
        }
        ports = container.get("ports") or []
        if not ports:
            groups.append({"targets": [ip], "labels": per_container})
        for port in ports:
            number = int(port["containerPort"])
            groups.append(
                {
                    "targets": [f"{ip}:{number}"],
                    "labels": {
                        **per_container,
                        f"{META}pod_container_port_name": port.get("name", ""),
                        f"{META}pod_container_port_number": str(number),
                        f"{META}pod_container_port_protocol": port.get("protocol", "TCP"),
                    },
                }
            )
    return groups


def list_pods(core: client.CoreV1Api) -> list[dict[str, Any]]:
    # The raw JSON keeps the API's camelCase names and skips the client's slow models.
    resp = core.list_pod_for_all_namespaces(_preload_content=False, _request_timeout=10)
    items: list[dict[str, Any]] = json.loads(resp.data)["items"]
    return items


def make_handler(targets: Callable[[], list[dict[str, Any]]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, b"ok", "text/plain")
                return
            if self.path != "/targets":
                self._send(404, b"not found", "text/plain")
                return
            try:
                body = json.dumps(targets()).encode()
            except Exception as err:
                # Prometheus keeps the previous targets when a refresh fails.
                log.warning("listing pods failed: %s", err)
                self._send(503, str(err).encode(), "text/plain")
                return
            self._send(200, body, "application/json")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # one request a second from Prometheus: not worth a log line

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maestro.localplatform.prometheus_sd",
        description="Serve the local cluster's pods as Prometheus HTTP SD targets.",
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--listen", required=True, help="HOST:PORT to serve /targets on")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        parser.error(f"--listen must be HOST:PORT, got {args.listen!r}")
    core = client.CoreV1Api(config.new_client_from_config(str(args.kubeconfig)))

    def targets() -> list[dict[str, Any]]:
        return [group for pod in list_pods(core) for group in pod_target_groups(pod)]

    server = ThreadingHTTPServer((host, int(port)), make_handler(targets))
    log.info("serving pod targets at http://%s/targets", args.listen)
    serve_until_terminated(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
