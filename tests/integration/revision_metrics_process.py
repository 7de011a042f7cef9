"""A stand-in for one serving revision's pod: exposes the serving contract's metrics
with prometheus_client and records a given traffic, so a test knows exactly what
Prometheus must compute from it.

The traffic is recorded in one step after Prometheus has scraped the zero-valued series
twice, under the same lock as the scrape, so no scrape ever sees half of it: every
`rate()` over a window that covers the step then sees exactly that traffic.

Run by the pod runner as `python revision_metrics_process.py --port P --traffic JSON`
with the contract's MAESTRO_DEPLOYMENT, MAESTRO_REVISION, MAESTRO_SERVE_MODEL_NAME and
MAESTRO_MODEL_VERSION, binding to MAESTRO_BIND_HOST (the pod IP).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LABELS = ("deployment", "revision", "model", "model_version")
SCRAPES_BEFORE_TRAFFIC = 2


class Revision:
    def __init__(self, labels: dict[str, str], traffic: dict[str, Any]) -> None:
        self.labels = labels
        self.traffic = traffic
        self.registry = CollectorRegistry()
        self.lock = threading.Lock()
        self.scrapes = 0
        r = self.registry
        self.requests = Counter(
            "maestro_requests", "Requests", [*LABELS, "code", "protocol"], registry=r
        )
        self.duration = Histogram(
            "maestro_request_duration_seconds", "Latency", LABELS, buckets=BUCKETS, registry=r
        )
        self.shadow_requests = Counter("maestro_shadow_requests", "Mirrored", LABELS, registry=r)
        self.shadow_agreements = Counter("maestro_shadow_agreements", "Agreed", LABELS, registry=r)
        self.shadow_delta = Histogram(
            "maestro_shadow_latency_delta_seconds", "Delta", LABELS, buckets=BUCKETS, registry=r
        )
        Gauge("maestro_model_info", "Model", LABELS, registry=r).labels(**labels).set(1)
        # The series exist (at zero) before any traffic, as a real server's do after start.
        for batch in traffic.get("requests", []):
            self.requests.labels(**labels, code=batch["code"], protocol="v2")
        self.duration.labels(**labels)
        if "shadow" in traffic:
            self.shadow_requests.labels(**labels)
            self.shadow_agreements.labels(**labels)
            self.shadow_delta.labels(**labels)

    def record(self) -> None:
        for batch in self.traffic.get("requests", []):
            self.requests.labels(**self.labels, code=batch["code"], protocol="v2").inc(
                batch["count"]
            )
            for _ in range(batch["count"]):
                self.duration.labels(**self.labels).observe(batch["seconds"])
        shadow = self.traffic.get("shadow")
        if shadow:
            self.shadow_requests.labels(**self.labels).inc(shadow["requests"])
            self.shadow_agreements.labels(**self.labels).inc(shadow["agreements"])
            for _ in range(shadow["requests"]):
                self.shadow_delta.labels(**self.labels).observe(shadow["delta_seconds"])

    def scrape(self) -> bytes:
        with self.lock:
            body = generate_latest(self.registry)
            self.scrapes += 1
            if self.scrapes == SCRAPES_BEFORE_TRAFFIC:
                self.record()  # shows from the next scrape on, all at once
            return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--traffic", type=json.loads, default={})
    args = parser.parse_args()
    labels = {
        "deployment": os.environ["MAESTRO_DEPLOYMENT"],
        "revision": os.environ["MAESTRO_REVISION"],
        "model": os.environ.get("MAESTRO_SERVE_MODEL_NAME", "model"),
        "model_version": os.environ.get("MAESTRO_MODEL_VERSION", ""),
    }
    revision = Revision(labels, args.traffic)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != "/metrics":
                self.send_error(404)
                return
            body = revision.scrape()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            print(f"{self.address_string()} {format % args}", flush=True)

    host = os.environ.get("MAESTRO_BIND_HOST", "127.0.0.1")
    ThreadingHTTPServer((host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
