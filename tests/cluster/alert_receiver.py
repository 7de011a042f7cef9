"""A webhook receiver in the test process: what Alertmanager's `webhook_configs` post to
(one JSON message per notification: a group's status and its alerts), kept in order."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Notification:
    received: float  # time.monotonic() when it arrived
    body: dict[str, Any]

    @property
    def status(self) -> str:
        return str(self.body["status"])

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """The notification's alerts whose labels include `labels`."""
        return [
            a
            for a in self.body.get("alerts", [])
            if all(a["labels"].get(k) == v for k, v in labels.items())
        ]


@dataclass
class AlertReceiver:
    url: str = ""
    notifications: list[Notification] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, body: dict[str, Any]) -> None:
        with self.lock:
            self.notifications.append(Notification(time.monotonic(), body))

    def first(self, status: str, **labels: str) -> Notification | None:
        """The first notification of `status` carrying an alert with `labels`."""
        with self.lock:
            seen = list(self.notifications)
        return next((n for n in seen if n.status == status and n.alerts(**labels)), None)

    def summary(self) -> str:
        with self.lock:
            seen = list(self.notifications)
        lines = [
            f"{n.status}: {[a['labels'] for a in n.body.get('alerts', [])]}" for n in seen[-10:]
        ]
        return f"{len(seen)} notifications, the last ones:\n" + "\n".join(lines)


@contextmanager
def running_receiver() -> Iterator[AlertReceiver]:
    """An AlertReceiver listening on a free loopback port until the block ends."""
    receiver = AlertReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            receiver.add(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: Any) -> None:  # quiet: pytest shows what the test prints
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/alerts"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
