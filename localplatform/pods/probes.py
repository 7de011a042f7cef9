"""Readiness probes: which port a probe targets and how its outcome moves a container's
readiness (both pure), and the check itself against the pod's address."""

from __future__ import annotations

import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any


def probe_target(probe: Mapping[str, Any], container: Mapping[str, Any]) -> int | None:
    """The port an httpGet or tcpSocket probe calls, by number or by the container's port
    name; None for other probes. ValueError for a port name the container lacks."""
    action = probe.get("httpGet") or probe.get("tcpSocket")
    if not action:
        return None
    port = action.get("port")
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"probe names port {port!r}, which the container does not declare")


def readiness_after(ready: bool, failures: int, ok: bool, threshold: int) -> tuple[bool, int]:
    """(ready, consecutive failures) after one probe: one success makes a container ready;
    a ready one turns unready only after `threshold` failures in a row."""
    if ok:
        return True, 0
    failures += 1
    if failures >= threshold or not ready:
        ready = False
    return ready, failures


def check(
    probe: Mapping[str, Any],
    container: Mapping[str, Any],
    ip: str,
    exec_env: Callable[[], dict[str, str]],
) -> bool:
    """Run `probe` once against a container listening on `ip`. `exec_env` gives the
    environment of an exec probe; errors it raises other than ValueError and OSError
    propagate."""
    try:
        port = probe_target(probe, container)
        if "httpGet" in probe:
            g = probe["httpGet"]
            url = f"{g.get('scheme', 'HTTP').lower()}://{ip}:{port}{g.get('path', '/')}"
            with urllib.request.urlopen(url, timeout=float(probe.get("timeoutSeconds", 1))) as r:
                return bool(200 <= r.status < 400)
        if "tcpSocket" in probe:
            with socket.create_connection((ip, port or 0), timeout=1):
                return True
        if "exec" in probe:
            done = subprocess.run(
                probe["exec"]["command"], env=exec_env(), capture_output=True, timeout=5
            )
            return done.returncode == 0
    except (urllib.error.URLError, OSError, ValueError, subprocess.TimeoutExpired):
        return False
    return False
