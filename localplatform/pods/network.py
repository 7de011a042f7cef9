"""The host side of pod addresses: which range pods get, routed to loopback if need be."""

from __future__ import annotations

import ipaddress
import logging
import socket
import subprocess

POD_CIDR = ipaddress.IPv4Network("10.244.0.0/16")
FALLBACK_CIDR = ipaddress.IPv4Network("127.1.0.0/16")
log = logging.getLogger("pod-runner")


def choose_pod_network() -> ipaddress.IPv4Network:
    """Pod IPs come from a range routed to loopback, so Services may list them as
    endpoints (the API refuses 127.0.0.0/8 there); fall back to 127.1/16 when the
    route cannot be added (not root)."""

    def bindable(ip: str) -> bool:
        with socket.socket() as s:
            try:
                s.bind((ip, 0))
                return True
            except OSError:
                return False

    probe = str(POD_CIDR.network_address + 1)
    if not bindable(probe):
        subprocess.run(
            ["ip", "route", "add", "local", str(POD_CIDR), "dev", "lo"],
            capture_output=True,
            check=False,
        )
    if bindable(probe):
        return POD_CIDR
    log.warning(
        "cannot route %s to loopback (needs root); pod IPs fall back to %s, "
        "which Services cannot list as endpoints",
        POD_CIDR,
        FALLBACK_CIDR,
    )
    return FALLBACK_CIDR
